package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves a command's flags in front of its positional arguments, so that people
// can type them where they think of them (`plxfs ls ds:train -l`, `plxfs wait /plx --timeout
// 5s`): urfave/cli v2 stops reading flags at the first positional argument. Everything after
// "--" is left as it is, which is also how to pass an argument that starts with "-".
func interspersed(app *cli.App, args []string) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	flags, cmds := app.Flags, app.Commands
	i := 1
	// The global flags and the command path (command, subcommand, ...).
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if isFlagArg(a) {
			n := flagArgs(flags, args[i:])
			out = append(out, args[i:i+n]...)
			i += n
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		i++
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	// The leaf command's own arguments: flags first, then positionals, in their orders.
	var fl, pos []string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if isFlagArg(a) {
			n := flagArgs(flags, args[i:])
			fl = append(fl, args[i:i+n]...)
			i += n
			continue
		}
		pos = append(pos, a)
		i++
	}
	return append(append(out, fl...), pos...)
}

func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' }

// flagArgs is how many of args a flag at args[0] takes: 2 for "--name VALUE" when the flag
// takes a value, else 1.
func flagArgs(flags []cli.Flag, args []string) int {
	name := strings.TrimLeft(args[0], "-")
	if strings.Contains(name, "=") || len(args) < 2 {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				return 1
			}
			return 2
		}
	}
	return 1 // unknown: cli reports it
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
