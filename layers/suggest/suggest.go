// Package suggest finds the known name a misspelt one was probably meant
// to be, for "did you mean" hints in error messages and reports.
package suggest

import "strings"

// MaxDistance is the largest edit distance at which a known name is still
// suggested.
const MaxDistance = 2

// Closest returns the known name closest to name: one that differs only in
// case, else the one at the smallest edit distance (at most MaxDistance,
// compared without case), the first in known order on a tie. It returns ""
// when none is close.
func Closest(name string, known []string) string {
	best, bestD := "", MaxDistance+1
	lower := strings.ToLower(name)
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k
		}
		if d := Distance(lower, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// Distance is the Levenshtein distance of a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
