// Package privacy provides client-level differential privacy for MFN's
// federated training: a Rényi-DP accountant for the sampled Gaussian
// mechanism. (Draft; the full tour follows with the noise and mechanisms.)
package privacy
