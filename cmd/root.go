// Package cmd is tusk's command line: it resolves settings once (config) into a
// Config, builds the logger and the storage, and hands them to the packages
// that do the work.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tusk-backup/tusk/config"
)

// Version is set at build time with -ldflags "-X github.com/tusk-backup/tusk/cmd.Version=v1.2.3".
var Version = ""

// rootOpts is what every command shares: the process's streams and
// environment, and the global flags.
type rootOpts struct {
	stdout, stderr io.Writer
	env            []string
	configPath     string
	home           string // where ~/.walg.json is looked for; "" looks nowhere
}

// Execute runs the command line args and returns the command's error for
// main to turn into an exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts := &rootOpts{stdout: stdout, stderr: stderr, env: os.Environ(), home: homeDir()}
	root := newRootCmd(opts)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCmd(opts *rootOpts) *cobra.Command {
	root := &cobra.Command{
		Use:   "tusk",
		Short: "tusk keeps PostgreSQL recoverable to any point in time",
		Long: `tusk archives PostgreSQL's WAL and base backups to a repository (a local folder
or any S3-compatible object store) and restores them to any point in time.

It keeps wal-g's command names and accepts wal-g's main settings (WALG_*, AWS_*,
PG*), so switching from wal-g is a change of binary. Settings come from flags,
then the environment, then a config file (--config, TUSK_CONFIG, wal-g's
WALG_CONFIG_PATH or ~/.walg.json), then defaults; "tusk help settings" lists
them all.`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		// With Args and RunE set, an unknown command reaches unknownCommand
		// (a usage error, exit 2) instead of cobra's multi-line error (exit 1).
		Args:                       unknownCommand,
		SuggestionsMinimumDistance: 2,
		RunE:                       func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef(fmt.Errorf("%v (see %s --help)", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.StringVar(&opts.configPath, "config", "", "config file (JSON, YAML or TOML) with the same keys as the environment, e.g. TUSK_REPO or WALG_S3_PREFIX (default: TUSK_CONFIG, WALG_CONFIG_PATH, else ~/.walg.json as wal-g finds it)")
	addSettingFlags(pf, "TUSK_REPO", "TUSK_LOG_LEVEL", "TUSK_LOG_FORMAT")
	addWALGFlag(pf, walgFlag{"turbo", "", "tusk has no throttling to turn off"})

	root.SetHelpCommand(newHelpCmd(root))
	root.AddCommand(newSettingsHelp())
	for _, c := range commands(opts) {
		root.AddCommand(c)
	}
	return root
}

// unknownCommand refuses the arguments of a bare "tusk", whose first word
// names no command, in one sentence with cobra's suggestion when it has one.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		return usagef(fmt.Errorf("unknown command %q: did you mean %s? (see %s --help for the commands)", args[0], strings.Join(s, " or "), c.CommandPath()))
	}
	return usagef(fmt.Errorf("unknown command %q (see %s --help for the commands)", args[0], c.CommandPath()))
}

// newHelpCmd is cobra's help command, except that an unknown topic is a
// usage error in one sentence (cobra prints the usage and exits 0).
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command, or the settings (tusk help settings)",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				topic := strings.Join(args, " ")
				if s := root.SuggestionsFor(args[0]); len(s) > 0 && target == root {
					return usagef(fmt.Errorf("unknown help topic %q: did you mean %s? (see tusk --help for the commands)", topic, strings.Join(s, " or ")))
				}
				return usagef(fmt.Errorf("unknown help topic %q (see tusk --help for the commands)", topic))
			}
			return target.Help()
		},
	}
}

// commands lists the subcommands; each arrives with the issue that builds it.
func commands(opts *rootOpts) []*cobra.Command {
	return []*cobra.Command{
		newWALPushCmd(opts),
		newWALFetchCmd(opts),
		newWALPrefetchCmd(opts),
		newBackupPushCmd(opts),
		newBackupListCmd(opts),
		newBackupFetchCmd(opts),
		newBackupMarkCmd(opts),
		newDeleteCmd(opts),
		newVerifyCmd(opts),
		newWALShowCmd(opts),
		newWALVerifyCmd(opts),
		newCheckCmd(opts),
		newRestoreDrillCmd(opts),
		newStCmd(opts),
		newWALRestoreCmd(opts),
	}
}

// addSettingFlags registers the flags of the named settings on fs.
func addSettingFlags(fs *pflag.FlagSet, keys ...string) {
	for _, k := range keys {
		s, ok := config.Lookup(k)
		if !ok || s.Flag == "" || s.Secret {
			panic("cmd: no flag for setting " + k) // a programming error caught by every test run
		}
		help := s.Help + " [" + s.Key + "]"
		fs.String(s.Flag, "", help)
		if s.Default == "true" || s.Default == "false" {
			fs.Lookup(s.Flag).NoOptDefVal = "true" // --pg-ready-rename alone means true, as in wal-g
		}
	}
}

// load resolves the settings for the running command and builds its logger.
func (o *rootOpts) load(c *cobra.Command) (config.Config, *slog.Logger, error) {
	path := config.FilePath(o.configPath, o.env, o.home)
	v, err := config.Resolve(settingFlags(c.Flags()), o.env, path)
	if err != nil {
		return config.Config{}, nil, usagef(err)
	}
	cfg, err := config.Build(v)
	if err != nil {
		return config.Config{}, nil, usagef(err)
	}
	cfg.ConfigFile = path
	log := newLogger(o.stderr, cfg)
	if path != "" {
		log.Debug("config file read", "path", path)
	}
	for _, n := range v.Notes() {
		log.Info("wal-g setting ignored", "note", n)
	}
	for _, n := range walgFlagNotes(c) {
		log.Info("wal-g flag ignored", "note", n)
	}
	return cfg, log, nil
}

// settingFlags are the setting flags the operator gave on fs, by name, for
// config.Resolve.
func settingFlags(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	for _, s := range config.Settings {
		if s.Flag == "" {
			continue
		}
		if f := fs.Lookup(s.Flag); f != nil && f.Changed {
			out[s.Flag] = f.Value.String()
		}
	}
	return out
}

// homeDir is the folder ~/.walg.json is looked for in: $HOME, else the
// account's home (wal-g looks only in the account's; the two differ only
// where HOME was changed).
func homeDir() string {
	if h := os.Getenv("HOME"); h != "" {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	ho := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

func versionString() string {
	v, rev, dirty := Version, "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	out := "tusk " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		out += " (" + rev + ")"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		out += " " + bi.GoVersion
	}
	return out
}

// newSettingsHelp is the "tusk help settings" topic.
func newSettingsHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "settings",
		Short: "Every setting, its environment and config-file names, and its flag",
		Long:  settingsTable(),
	}
}

func settingsTable() string {
	var b strings.Builder
	b.WriteString(`Settings are read from flags, then the environment, then the config file
(--config FILE, TUSK_CONFIG, WALG_CONFIG_PATH, else ~/.walg.json, .toml, .yaml
or .yml as wal-g finds it; keys as in the environment), then the defaults below. The also-accepted names are wal-g's, AWS's and libpq's, so
an existing wal-g environment works unchanged. An unknown TUSK_* variable or
config-file key is an error.

`)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tALSO ACCEPTED\tFLAG\tDEFAULT\tMEANING")
	for _, s := range config.Settings {
		flag := ""
		if s.Flag != "" {
			flag = "--" + s.Flag
		}
		aliases := strings.Join(s.Aliases, ", ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Key, aliases, flag, s.Default, s.Help)
	}
	tw.Flush()
	return b.String()
}

var errNoRepo = errors.New("no repository is configured; set TUSK_REPO (or wal-g's WALG_S3_PREFIX / WALG_FILE_PREFIX) or pass --repo, e.g. --repo file:///var/lib/tusk/repo")
