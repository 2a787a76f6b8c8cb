package viz

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"gonum.org/v1/plot/palette/moreland"
)

// ErrTooLarge is returned by Animation when the frames would not fit the
// memory budget (image/gif encodes from frames held in memory); a larger
// Every reduces the number of frames.
var ErrTooLarge = errors.New("viz: animation too large")

// maxAnimationPixels bounds the pixels of all frames together (one byte
// each): 512 MiB.
const maxAnimationPixels = 512 << 20

// AnimationOptions controls Animation. Zero values select the defaults.
type AnimationOptions struct {
	Every   int // keep every k-th step (1, the default, keeps all) and the final step
	DelayCS int // delay between frames in 1/100 s; default 8
	Scale   int // pixels per cell; default max(1, 256/N)
}

// Layout of a frame, in pixels.
const (
	animMargin    = 8
	animTitleH    = 18 // one line of basicfont.Face7x13 plus spacing
	animBarGap    = 10
	animBarW      = 16
	animLabelGap  = 6
	animLabelW    = 72 // "-100.00 mV" in a 7-pixel-wide font
	animPalFirst  = 2  // palette indices 0 and 1 are background and text
	animPalColors = 256 - animPalFirst
)

// AnimationFrames returns the number of frames Animation writes for h:
// steps 1, 1+k, 1+2k, … up to T, and the final step T when it is not one of
// them, so the animation always ends on the final field.
func AnimationFrames(h History, o AnimationOptions) int {
	return len(animationSteps(h.T, o.Every))
}

// animationSteps returns the 0-based steps Animation draws: 0, k, 2k, …
// below t, then t−1 if it is not already the last of them.
func animationSteps(t, every int) []int {
	k := max(every, 1)
	steps := make([]int, 0, (t+k-1)/k+1)
	for s := 0; s < t; s += k {
		steps = append(steps, s)
	}
	if t > 0 && steps[len(steps)-1] != t-1 {
		steps = append(steps, t-1)
	}
	return steps
}

// animPalette is the fixed palette of every frame: white, black, then
// animPalColors colours of Moreland's smooth blue–red map from low to high.
func animPalette() color.Palette {
	cm := moreland.SmoothBlueRed()
	cm.SetMin(0)
	cm.SetMax(1)
	pal := color.Palette{color.White, color.Black}
	for i := range animPalColors {
		c, err := cm.At(float64(i) / float64(animPalColors-1))
		if err != nil { // At fails only outside [min, max]
			c = color.Black
		}
		r, g, b, _ := c.RGBA()
		pal = append(pal, color.RGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 255})
	}
	return pal
}

// Animation writes h as an animated GIF: per frame, the field as a heat map
// with the step number above it and a colour bar labelled in mV beside it.
// The palette and the value range (that of the whole history) are the same
// in every frame. It returns an error wrapping ErrTooLarge if the frames
// would exceed the memory budget, or the writer's error.
func Animation(w io.Writer, h History, o AnimationOptions) error {
	delay := o.DelayCS
	if delay <= 0 {
		delay = 8
	}
	scale := o.Scale
	if scale <= 0 {
		scale = max(1, 256/h.N)
	}
	f := h.N * scale
	width := animMargin + f + animBarGap + animBarW + animLabelGap + animLabelW + animMargin
	height := animMargin + animTitleH + f + animMargin
	frames := AnimationFrames(h, o)
	if int64(frames)*int64(width)*int64(height) > maxAnimationPixels {
		return fmt.Errorf("%w: %d frames of %d×%d pixels; keep fewer steps (every k-th) or a smaller scale",
			ErrTooLarge, frames, width, height)
	}
	pal := animPalette()
	lo, hi := h.rangeMV()
	index := func(mv float64) uint8 {
		x := (mv - lo) / (hi - lo) * float64(animPalColors-1)
		return uint8(animPalFirst + int(math.Round(min(max(x, 0), animPalColors-1))))
	}

	// The template holds what every frame shares: background, colour bar, labels.
	tmpl := image.NewPaletted(image.Rect(0, 0, width, height), pal)
	barX, top := animMargin+f+animBarGap, animMargin+animTitleH
	for y := range f {
		idx := index(hi - (hi-lo)*float64(y)/float64(max(f-1, 1)))
		for x := barX; x < barX+animBarW; x++ {
			tmpl.SetColorIndex(x, top+y, idx)
		}
	}
	labelX := barX + animBarW + animLabelGap
	drawText(tmpl, labelX, top+10, fmt.Sprintf("%.2f mV", hi))
	drawText(tmpl, labelX, top+f/2+4, fmt.Sprintf("%.2f", (lo+hi)/2))
	drawText(tmpl, labelX, top+f-2, fmt.Sprintf("%.2f mV", lo))

	anim := &gif.GIF{
		Config: image.Config{ColorModel: pal, Width: width, Height: height},
	}
	for _, t := range animationSteps(h.T, o.Every) {
		img := image.NewPaletted(tmpl.Rect, pal)
		copy(img.Pix, tmpl.Pix)
		frame := h.Frame(t)
		for r := range h.N {
			for c := range h.N {
				idx := index(frame[r*h.N+c] * 1e3)
				for dy := range scale {
					row := img.Pix[(top+r*scale+dy)*img.Stride+animMargin+c*scale:]
					for dx := range scale {
						row[dx] = idx
					}
				}
			}
		}
		drawText(img, animMargin, animMargin+12, fmt.Sprintf("V (mV), step %d/%d", t+1, h.T))
		anim.Image = append(anim.Image, img)
		anim.Delay = append(anim.Delay, delay)
	}
	return gif.EncodeAll(w, anim)
}

// drawText writes s in black with its baseline at (x, y).
func drawText(img *image.Paletted, x, y int, s string) {
	d := font.Drawer{
		Dst:  img,
		Src:  image.NewUniform(color.Black),
		Face: basicfont.Face7x13,
		Dot:  fixed.P(x, y),
	}
	d.DrawString(s)
}
