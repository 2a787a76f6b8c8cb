package sim

import (
	"fmt"
	"math"
)

// Physical constants of the Nernst equation.
const (
	GasConstant = 8.314 // R, J/(mol·K)
	// FaradayConstant F in C/mol. MFN_MODEL.md rounds it to 96485.33, but
	// the reference implementation (and its golden values) use the CODATA
	// 2018 value to five decimals; 96485.33 would be off by 2.2e-8 relative.
	FaradayConstant   = 96485.33212
	BodyTemperatureK  = 310.0 // default temperature, K
	MinTemperatureK   = 273.0 // lowest accepted temperature, K
	MaxTemperatureK   = 320.0 // highest accepted temperature, K
	MinConcentrationM = 1e-6  // concentrations are clamped up to this, mol/L
)

// Nernst returns the equilibrium potential E = (R·T)/(z·F) · ln(c_out/c_in)
// in volts for an ion of valence z with concentrations in mol/L at the given
// temperature in kelvin. Each concentration is first raised to at least
// 1e-6 mol/L (so the logarithm is defined for depleted compartments).
//
// Errors: z not one of −2, −1, 1, 2; temperature outside [273, 320] K;
// a NaN or infinite concentration. Each error wraps ErrInvalidConfig.
func Nernst(z int, cOut, cIn, temperatureK float64) (float64, error) {
	switch z {
	case -2, -1, 1, 2:
	default:
		return 0, &ConfigError{Field: "z", Value: z, Range: "one of -2, -1, 1, 2"}
	}
	if math.IsNaN(temperatureK) || temperatureK < MinTemperatureK || temperatureK > MaxTemperatureK {
		return 0, &ConfigError{Field: "temperature", Value: temperatureK, Range: "in [273, 320] K"}
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"c_out", cOut}, {"c_in", cIn}} {
		if math.IsNaN(c.v) || math.IsInf(c.v, 0) {
			return 0, &ConfigError{Field: c.name, Value: c.v, Range: fmt.Sprintf("a finite concentration in mol/L (values below %g are clamped)", MinConcentrationM)}
		}
	}
	cOut = max(cOut, MinConcentrationM)
	cIn = max(cIn, MinConcentrationM)
	return (GasConstant * temperatureK) / (float64(z) * FaradayConstant) * math.Log(cOut/cIn), nil
}
