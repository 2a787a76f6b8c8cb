// Package viz draws MFN field histories: a one-page PNG dashboard and a GIF
// animation.
//
// Both take a History, the T×N×N potentials (volts) of a run after each
// step, as sim.Simulate returns with history on or as a .npy file holds.
// NewHistory checks the shape and rejects non-finite values, naming the
// first bad cell.
//
// # Dashboard
//
// Dashboard lays out nine panels on a 3×3 grid (gonum.org/v1/plot, composed
// with draw.Tiles and rendered by vgimg):
//
//	field at step 1     | field at step T/2      | field at step T      (+ colour bar, mV)
//	gradient magnitude  | pattern V > −60 mV     | histogram of V (step T)
//	mean and std of V   | fraction above −60 mV  | statistics (features, metrics)
//
// The three field maps share one colour scale, the range of the whole
// history, so they can be compared; the colour bar at the right shows it.
// The gradient magnitude is |∇V| in mV per cell, with central differences
// inside the grid and one-sided differences at the edges (numpy.gradient).
//
// # Animation
//
// Animation writes one GIF frame per step (or per k-th step, always ending
// on the final step). Every frame uses the same 256-colour palette and the
// same value range, the range of the whole history, so a colour means the
// same potential in every frame; a colour bar with its limits in mV sits
// beside the field.
package viz
