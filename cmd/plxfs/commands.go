package main

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/connspec"
)

// buildVersion is the version stamped at build time (-X main.version), else the module
// version the go command recorded (a tagged `go install`, or a VCS pseudo-version), else the
// VCS revision, else "devel".
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	v := "devel-" + rev[:min(12, len(rev))]
	if dirty {
		v += "-dirty"
	}
	return v
}

func init() {
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c) }
}

func printVersion(c *cli.Context) {
	fmt.Fprintf(c.App.Writer, "plxfs %s (%s, %s/%s)\n", c.App.Version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print plxfs's version (as --version does)",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("version takes no arguments")
			}
			printVersion(c)
			return nil
		},
	}
}

// checkCommand refuses an unknown command (or subcommand) before anything runs, with the
// nearest known name: "unknown command bogus; did you mean ...; see plxfs --help".
func checkCommand(app *cli.App, args []string) error {
	flags, cmds, path := app.Flags, app.Commands, "plxfs"
	for i := 1; i < len(args); {
		a := args[i]
		if a == "--" {
			return nil
		}
		if isFlagArg(a) {
			i += flagArgs(flags, args[i:])
			continue
		}
		if (a == "help" || a == "h") && findCommand(cmds, a) == nil {
			// "plxfs help COMMAND": the topic must be a command too.
			i++
			for i < len(args) && isFlagArg(args[i]) {
				i++
			}
			if i == len(args) {
				return nil
			}
			a = args[i]
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			var names, primary []string
			for _, c := range cmds {
				if !c.Hidden && c.Name != "help" {
					names = append(names, c.Names()...)
					primary = append(primary, c.Name)
				}
			}
			msg := "unknown command " + a
			if s := nearest(a, names); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += "; commands: " + strings.Join(primary, ", ")
			}
			return usageErrorf("%s; see %s --help", msg, path)
		}
		path += " " + cmd.Name
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			return nil
		}
		i++
	}
	return nil
}

// nearest is the known name closest to word: one it starts, or one within a small edit
// distance (about one typo per three letters); "" when none is plausible.
func nearest(word string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		if len(word) >= 2 && strings.HasPrefix(k, word) {
			return k
		}
		if d := connspec.EditDistance(word, k); bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist < 0 || bestDist > min(max(len(word)/3, 1), 3) {
		return ""
	}
	return best
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `completion prints a script that completes plxfs's commands, subcommands and flags:

   source <(plxfs completion bash)                       # bash, this shell; or add it to ~/.bashrc
   plxfs completion zsh > "${fpath[1]}/_plxfs"            # zsh (then restart it, or: compinit)
   plxfs completion fish > ~/.config/fish/completions/plxfs.fish

The bash and zsh scripts ask plxfs itself for the candidates, so they follow the binary on
$PATH; the fish script is static (re-run it after upgrading).`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("completion takes one shell: bash, zsh or fish")
			}
			switch sh := c.Args().First(); sh {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshCompletion)
				return err
			case "fish":
				script, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(c.App.Writer, script)
				return err
			default:
				return usageErrorf("completion %q: use bash, zsh or fish", sh)
			}
		},
	}
}

// bashCompletion asks the binary for candidates: plxfs WORDS... --generate-bash-completion
// lists the commands, subcommands or (after a "-") flags that may follow WORDS.
const bashCompletion = `# bash completion for plxfs. Load it with: source <(plxfs completion bash)
_plxfs() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=("${COMP_WORDS[@]:1:COMP_CWORD-1}") words
	if [[ $cur == -* ]]; then
		words=$("${COMP_WORDS[0]}" "${prev[@]}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[0]}" "${prev[@]}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _plxfs plxfs
`

// zshCompletion is the same protocol as bashCompletion, for zsh's completion system.
const zshCompletion = `#compdef plxfs
# zsh completion for plxfs. Install it with: plxfs completion zsh > "${fpath[1]}/_plxfs"
_plxfs() {
	local cur=${words[CURRENT]}
	local -a before candidates
	before=("${(@)words[2,CURRENT-1]}")
	if [[ $cur == -* ]]; then
		candidates=("${(@f)$(${words[1]} "${before[@]}" "$cur" --generate-bash-completion 2>/dev/null)}")
	else
		candidates=("${(@f)$(${words[1]} "${before[@]}" --generate-bash-completion 2>/dev/null)}")
	fi
	if (( ${#candidates} )) && [[ -n ${candidates[1]} ]]; then
		compadd -a candidates
	else
		_files
	fi
}
compdef _plxfs plxfs
`
