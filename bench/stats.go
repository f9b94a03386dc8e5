package main

import (
	"fmt"
	"slices"
	"time"
)

// median of ds; zero for none.
func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

// percentile p (0–100) of ds by the nearest-rank method.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// ratioCell is the median of ratios with their range when there are several, "1.14 (1.09–1.22)":
// on a shared machine the runs of one build spread by more than some targets, and a reader
// should see by how much.
func ratioCell(ratios []float64, format string) string {
	cell := fmt.Sprintf(format, medianFloat(ratios))
	if len(ratios) > 1 {
		cell += " (" + fmt.Sprintf(format, slices.Min(ratios)) + "–" + fmt.Sprintf(format, slices.Max(ratios)) + ")"
	}
	return cell
}

func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func millis(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
