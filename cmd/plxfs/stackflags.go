package main

// The flags of the bucket stack (package bucketstack), shared by mount and csi so that a CSI
// volume is bounded exactly as a mount is.

import (
	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/internal/bucketstack"
)

func stackFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "hedge-floor", Value: bucketstack.DefaultHedgeFloor, Usage: "a stat or listing request, or a read that stopped delivering bytes, that has not answered within max(this, 4 × the slowest of its last 64 answers, at most 10s) is sent again in parallel (the first answer wins); when neither answers within another such deadline the operation fails with EIO. 0 turns hedging off"},
		&cli.DurationFlag{Name: "op-timeout", Value: bucketstack.DefaultOpTimeout, Usage: "bound on each GCS call made for a file operation (lookup, listing, chunk fetch); past it the operation fails with EIO and cached data keeps being served. Uploads are bounded by their retries instead"},
	}
}

// stackOptions reads stackFlags into the stack's options (Metrics and Logger are the caller's).
func stackOptions(c *cli.Context) (bucketstack.Options, error) {
	var o bucketstack.Options
	if o.OpTimeout = c.Duration("op-timeout"); o.OpTimeout <= 0 {
		return o, usageErrorf("--op-timeout %v: use a positive duration such as 30s", o.OpTimeout)
	}
	switch o.HedgeFloor = c.Duration("hedge-floor"); {
	case o.HedgeFloor < 0:
		return o, usageErrorf("--hedge-floor %v: use a positive duration such as 1s, or 0 to turn hedging off", o.HedgeFloor)
	case o.HedgeFloor == 0:
		o.HedgeFloor = -1 // bucketstack: negative turns hedging off; 0 would mean the default
	}
	return o, nil
}
