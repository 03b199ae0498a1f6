package connspec

import (
	"fmt"
	"strings"
)

// suggestFix returns the fix for an unknown word: "did you mean X?" when one of the known words
// is close, otherwise the list of known words.
func suggestFix(word string, known []string) string {
	if s := closest(word, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "expected one of: " + strings.Join(known, ", ")
}

// closest returns the known word nearest to word (case-insensitive edit distance, ignoring "_"
// and "-" so that snake_case, kebab-case and camelCase spellings meet), or "" when none is
// close enough to be a plausible typo.
func closest(word string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	w := norm(word)
	best, bestDist := "", -1
	for _, k := range known {
		d := EditDistance(w, norm(k))
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	// Allow about one typo per three letters, at least one and at most three.
	limit := min(max(len(w)/3, 1), 3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// EditDistance is the optimal-string-alignment distance between a and b (Levenshtein plus
// transposition of adjacent letters, the commonest typo), counted in bytes: what "did you
// mean" suggestions rank by, for keys here and command names in the CLI. Inputs are short;
// long ones are cut so that a hostile file cannot make this quadratic step expensive.
func EditDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen {
		a = a[:maxLen]
	}
	if len(b) > maxLen {
		b = b[:maxLen]
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
