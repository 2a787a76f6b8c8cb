// Package analyze answers the questions of the MFN exploration notebooks.
package analyze
