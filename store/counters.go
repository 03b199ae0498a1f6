package store

import "sync/atomic"

// Counters counts what the storage layers do to keep answers honest and bounded, for
// Prometheus metrics and plxfs status. Bucket implementations and decorators that are given a
// *Counters add to it; a nil *Counters counts nothing. The zero value is ready to use and all
// methods are safe for concurrent use.
type Counters struct {
	outcomeLanded    atomic.Int64
	outcomeNotLanded atomic.Int64
	hedged           atomic.Int64
	hedgeWins        atomic.Int64
	hedgeGaveUp      atomic.Int64
	circuitsOpen     atomic.Int64
	circuitOpenings  atomic.Int64
	failedFastN      atomic.Int64
}

// CountersSnapshot is a copy of a Counters' values.
type CountersSnapshot struct {
	// OutcomeLanded and OutcomeNotLanded count uploads whose final request failed in a way
	// that left the outcome unknown, and which were therefore checked against the bucket: the
	// object had landed intact (the upload was reported as a success), or it had not.
	OutcomeLanded, OutcomeNotLanded int64
	// Hedged counts requests sent again because an earlier attempt had not answered (or, for
	// a read, had stopped delivering bytes) within the adaptive deadline.
	Hedged int64
	// HedgeWins counts hedged requests answered first by a later attempt.
	HedgeWins int64
	// HedgeGaveUp counts calls that failed because no attempt answered in time.
	HedgeGaveUp int64
	// CircuitsOpen is how many circuits of WithBreaker are open now (calls of their kind
	// fail at once); CircuitOpenings counts how many times one opened; FailedFast counts the
	// calls failed at once.
	CircuitsOpen, CircuitOpenings, FailedFast int64
}

// OutcomeChecked is OutcomeLanded + OutcomeNotLanded.
func (s CountersSnapshot) OutcomeChecked() int64 { return s.OutcomeLanded + s.OutcomeNotLanded }

// Snapshot returns the current values (zero for a nil c).
func (c *Counters) Snapshot() CountersSnapshot {
	if c == nil {
		return CountersSnapshot{}
	}
	return CountersSnapshot{
		OutcomeLanded:    c.outcomeLanded.Load(),
		OutcomeNotLanded: c.outcomeNotLanded.Load(),
		Hedged:           c.hedged.Load(),
		HedgeWins:        c.hedgeWins.Load(),
		HedgeGaveUp:      c.hedgeGaveUp.Load(),
		CircuitsOpen:     c.circuitsOpen.Load(),
		CircuitOpenings:  c.circuitOpenings.Load(),
		FailedFast:       c.failedFastN.Load(),
	}
}

// OutcomeChecked records one upload whose outcome was checked against the bucket.
func (c *Counters) OutcomeChecked(landed bool) {
	switch {
	case c == nil:
	case landed:
		c.outcomeLanded.Add(1)
	default:
		c.outcomeNotLanded.Add(1)
	}
}

// Hedged records one request sent again (a hedge or a resumed read).
func (c *Counters) Hedged() {
	if c != nil {
		c.hedged.Add(1)
	}
}

func (c *Counters) hedgeWon() {
	if c != nil {
		c.hedgeWins.Add(1)
	}
}

func (c *Counters) gaveUp() {
	if c != nil {
		c.hedgeGaveUp.Add(1)
	}
}

func (c *Counters) circuitOpened() {
	if c != nil {
		c.circuitsOpen.Add(1)
		c.circuitOpenings.Add(1)
	}
}

func (c *Counters) circuitClosed() {
	if c != nil {
		c.circuitsOpen.Add(-1)
	}
}

func (c *Counters) failedFast() {
	if c != nil {
		c.failedFastN.Add(1)
	}
}
