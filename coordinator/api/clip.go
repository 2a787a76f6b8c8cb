package api

import (
	"strconv"
	"unicode/utf8"
)

// MaxClientString is the most bytes of one client-supplied string (a
// path, a JSON key, an id from the URL) that the API copies into a log
// line or an error body; the rest is replaced by a marker saying how much
// was cut, so that a client cannot make the member write more than it
// reads from the logs' budget.
const MaxClientString = 256

// maxErrorMessage bounds a whole error message, which may quote several
// clipped strings and the coordinator's own errors.
const maxErrorMessage = 4 * MaxClientString

// clip returns s when it has at most MaxClientString bytes, otherwise
// its first MaxClientString bytes (cut at a rune boundary) followed by
// "…[+N bytes]".
func clip(s string) string { return clipTo(s, MaxClientString) }

func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[+" + strconv.Itoa(len(s)-cut) + " bytes]"
}
