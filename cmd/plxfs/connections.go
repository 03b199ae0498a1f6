package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/store"
)

func connectionsCommand() *cli.Command {
	return withCommonFlags(&cli.Command{
		Name:  "connections",
		Usage: "show the connections and check that each can be reached",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the selected connections: bucket, prefix and the credentials each will use",
				Flags: []cli.Flag{outputFlag()},
				Action: func(c *cli.Context) error {
					rt, err := getRuntime(c)
					if err != nil {
						return err
					}
					return listConnections(c, rt)
				},
			},
			{
				Name:      "check",
				Usage:     "resolve each connection's credentials and make one cheap GCS call; non-zero exit if any fails",
				ArgsUsage: "[NAME...]",
				Flags: []cli.Flag{
					outputFlag(),
					&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "time allowed per connection"},
				},
				Action: func(c *cli.Context) error {
					rt, err := getRuntime(c)
					if err != nil {
						return err
					}
					return checkConnections(c, rt)
				},
			},
		},
	})
}

func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"}
}

func outputFormat(c *cli.Context) (string, error) {
	switch f := c.String("output"); f {
	case "table", "json":
		return f, nil
	default:
		return "", usageErrorf("--output %q: use table or json", f)
	}
}

type connectionInfo struct {
	Name        string `json:"name"`
	Bucket      string `json:"bucket"`
	Prefix      string `json:"prefix"`
	Credentials string `json:"credentials"`
	Error       string `json:"error,omitempty"`
}

func describe(rt *runtime, conn connspec.Connection) connectionInfo {
	info := connectionInfo{Name: conn.Name, Bucket: conn.Bucket, Prefix: conn.Prefix}
	cr, err := rt.Credentials(conn)
	if err != nil {
		info.Error = err.Error()
		info.Credentials = "error"
	} else {
		info.Credentials = cr.Source
	}
	return info
}

func listConnections(c *cli.Context, rt *runtime) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	conns, err := rt.Selected()
	if err != nil {
		return err
	}
	infos := make([]connectionInfo, 0, len(conns))
	for _, conn := range conns {
		infos = append(infos, describe(rt, conn))
	}
	if format == "json" {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBUCKET\tPREFIX\tCREDENTIALS")
	for _, in := range infos {
		cred := in.Credentials
		if in.Error != "" {
			cred = "error: " + in.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", in.Name, in.Bucket, orDash(in.Prefix), cred)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type checkResult struct {
	connectionInfo
	OK bool `json:"ok"`
}

func checkConnections(c *cli.Context, rt *runtime) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	var conns []connspec.Connection
	if c.Args().Present() {
		cat, err := rt.Catalog()
		if err != nil {
			return err
		}
		if conns, err = cat.Select(c.Args().Slice()); err != nil {
			return err
		}
	} else if conns, err = rt.Selected(); err != nil {
		return err
	}
	results := make([]checkResult, 0, len(conns))
	failed := 0
	for _, conn := range conns {
		r := checkResult{connectionInfo: describe(rt, conn)}
		if r.Error == "" {
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			err := checkOne(ctx, rt, conn)
			cancel()
			if err != nil {
				r.Error = rowError(err)
			}
		}
		r.OK = r.Error == ""
		if !r.OK {
			failed++
		}
		results = append(results, r)
	}
	if format == "json" {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLOCATION\tCREDENTIALS\tSTATUS")
		for _, r := range results {
			status := "OK"
			if !r.OK {
				status = "FAIL: " + r.Error
			}
			fmt.Fprintf(tw, "%s\tgs://%s/%s\t%s\t%s\n", r.Name, r.Bucket, r.Prefix, r.Credentials, status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d connections failed the check", failed, len(results)), 1)
	}
	return nil
}

// checkOne lists at most one object under the connection's prefix: the cheapest call that
// proves the credentials, the bucket and the permission to read it.
func checkOne(ctx context.Context, rt *runtime, conn connspec.Connection) error {
	b, err := rt.Bucket(ctx, conn)
	if err != nil {
		return err
	}
	_, err = b.List(ctx, store.ListOptions{Prefix: conn.Prefix, PageSize: 1})
	scope := rt.scope(conn)
	scope.Listing = true
	return explainError(scope, fmt.Sprintf("listing %q", conn.URL()), err)
}

// rowError is an error as one row of a per-connection table shows it: what was being done,
// the cause and what to do, without the connection's name (the row's first column).
func rowError(err error) string {
	var ue *userError
	if errors.As(err, &ue) {
		msg := ue.doing + ": " + ue.cause
		if ue.advice != "" {
			msg += "; " + ue.advice
		}
		return msg
	}
	return shortCause(err)
}
