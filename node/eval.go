package node

import (
	"fmt"
	"math"

	"github.com/mfn/mfn/learn"
)

// evalChunk is how many rows meanLoss passes to the model at once, so
// that memory stays bounded whatever the dataset's size. 64 rows keep an
// MNIST-sized batch and its activations in cache: over 2,000 rows of 784
// features with an MLP of 128 hidden units, 64-row chunks took a median
// 97 ms and 512-row chunks 240 ms (docs/BENCHMARKS.md).
const evalChunk = 64

// Evaluation is a model's accuracy and mean cross-entropy on a dataset.
type Evaluation struct {
	Accuracy float64
	Loss     float64
	Samples  int
}

// Evaluate returns m's accuracy and mean cross-entropy loss on d, in
// chunks of evalChunk rows. The model is not changed. It fails with
// learn.ErrNoData for an empty d, learn.ErrDiverged when the loss is not
// finite, and an error wrapping ErrTask when d does not fit m's shape.
func Evaluate(m learn.Model, d *learn.Dataset) (Evaluation, error) {
	n := d.Len()
	if n == 0 {
		return Evaluation{}, learn.ErrNoData
	}
	if len(d.X) != n*d.Dim || d.Dim == 0 {
		return Evaluation{}, fmt.Errorf("%w: dataset of %d rows has %d values", ErrTask, n, len(d.X))
	}
	acc, err := learn.Accuracy(m, d)
	if err != nil {
		return Evaluation{}, err
	}
	loss, err := meanLoss(m, d)
	if err != nil {
		return Evaluation{}, err
	}
	return Evaluation{Accuracy: acc, Loss: loss, Samples: n}, nil
}

// meanLoss is m's mean cross-entropy on d (non-empty, of m's shape), in
// chunks of evalChunk rows; learn.ErrDiverged when it is not finite. The
// model interface computes the loss only with the gradient (Grad), which
// is discarded: about three forward passes' work.
func meanLoss(m learn.Model, d *learn.Dataset) (float64, error) {
	n := d.Len()
	grad := make([]float64, len(m.Params()))
	var sum float64
	for lo := 0; lo < n; lo += evalChunk {
		hi := min(lo+evalChunk, n)
		sum += m.Grad(learn.Batch{X: d.X[lo*d.Dim : hi*d.Dim], Y: d.Y[lo:hi]}, grad) * float64(hi-lo)
	}
	loss := sum / float64(n)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, learn.ErrDiverged
	}
	return max(loss, 0), nil
}

// maxLossRows bounds the training rows the signed train loss is measured
// on, so that measuring stays a fraction of a local epoch (about a
// quarter of one over 2,000 rows; docs/BENCHMARKS.md). Larger training
// splits are sampled evenly: rows ⌊i·n/maxLossRows⌋, spread over the whole
// split whatever its order (a file sorted by class included).
const maxLossRows = 512

// roundMetrics are what a node signs about its trained model (crypto
// statement version 2): the mean loss on its training split and, when it
// keeps a held-out split, the accuracy there.
type roundMetrics struct {
	trainLoss       float64
	holdoutAccuracy float64
	holdoutSamples  uint64
}

// measure computes the round metrics of a trained model m: train loss on
// train (at most maxLossRows of its rows), accuracy on hold (nil or empty:
// none). ok is false when the
// loss cannot be measured; the node then signs a statement without
// metrics.
func measure(m learn.Model, train, hold *learn.Dataset) (roundMetrics, bool) {
	if train == nil || train.Len() == 0 || len(train.X) != train.Len()*train.Dim {
		return roundMetrics{}, false
	}
	sample := train
	if n := train.Len(); n > maxLossRows {
		idx := make([]int, maxLossRows)
		for i := range idx {
			idx[i] = i * n / maxLossRows
		}
		sample = train.Subset(idx)
	}
	loss, err := meanLoss(m, sample)
	if err != nil {
		return roundMetrics{}, false
	}
	rm := roundMetrics{trainLoss: loss}
	if hold != nil && hold.Len() > 0 {
		if acc, err := learn.Accuracy(m, hold); err == nil && acc >= 0 && acc <= 1 {
			rm.holdoutAccuracy, rm.holdoutSamples = acc, uint64(hold.Len())
		}
	}
	return rm, true
}
