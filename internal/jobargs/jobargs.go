// Package jobargs is the contract between the Jobs the operator launches and the chainsync
// commands they run. Each command has one type: the operator renders it into the container's
// arguments (Args), and the command binds the same type to its flags (BindFlags), so a flag
// cannot be written on one side and forgotten or spelled differently on the other, and nothing
// is recovered by parsing a command line back.
//
// It imports nothing from the operator or the cycle: both sides depend on it.
package jobargs

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The pod's filesystem layout, as the Jobs mount it and the commands default to.
const (
	// VolumesRoot is where a pod mounts each PersistentVolumeClaim it needs, one directory per
	// claim name; endpoint paths and the record store are resolved under it.
	VolumesRoot = "/chainsync/volumes"
	// SecretsRoot is where a pod finds the keys of the Secrets its policy names, as files
	// <SecretsRoot>/<secret>/<key>.
	SecretsRoot = "/chainsync/secrets"
)

// ClaimPath is where a pod finds p (slash-separated, "" for the claim itself) on claim, under
// the volumes root: the Jobs mount each claim there, and the commands resolve paths there.
func ClaimPath(volumes, claim, p string) string { return path.Join(volumes, claim, p) }

// SecretPath is where a pod finds a Secret's key ("" for the Secret's directory) under the
// Secrets root.
func SecretPath(secrets, name, key string) string { return path.Join(secrets, name, key) }

// The subcommands of chainsync that Jobs run.
const (
	CycleCommand         = "cycle"
	ForgetRecordsCommand = "forget-records"
	ReadMembersCommand   = "read-members"
)

// Defaults of the flags a Job may leave out, for a person running a command by hand.
const (
	DefaultConcurrency = 4
	DefaultLockTimeout = time.Minute
)

// Cycle is what `chainsync cycle` is asked to do: cycle Users on a policy.
type Cycle struct {
	// Namespace of the policy and its users.
	Namespace string
	// Policy is the SyncPolicy to run.
	Policy string
	// Job names the cycle; users' results carry it and delete approvals name it.
	Job string
	// Store is the record store's directory as the pod sees it.
	Store string
	// Volumes is where the pod mounts each claim, one directory per claim name.
	Volumes string
	// Secrets is where the pod mounts the policy's Secrets, as <Secrets>/<secret>/<key>.
	Secrets string
	// AllowedDestinations are the host:ports the operator allowed the policy's Secrets to be
	// sent to: the cycle refuses any other, should the policy change after the operator checked.
	AllowedDestinations []string
	// Concurrency is how many users one pod cycles at the same time.
	Concurrency int
	// Shards is how many pods share the users (an Indexed Job's completions): pod i takes users
	// i, i+Shards, i+2*Shards...
	Shards int
	// LockTimeout is how long a user waits for another cycle of the same user; zero leaves it
	// to the command's default.
	LockTimeout time.Duration
	// Users are the SyncUser names, after "--".
	Users []string
}

// Args renders a as the container's arguments, subcommand first.
func (a Cycle) Args() []string {
	args := []string{CycleCommand,
		"--namespace", a.Namespace,
		"--policy", a.Policy,
		"--job", a.Job,
		"--store", a.Store,
		"--volumes", a.Volumes,
		"--secrets", a.Secrets,
		"--concurrency", strconv.Itoa(a.Concurrency),
		"--shards", strconv.Itoa(a.Shards),
	}
	for _, dest := range a.AllowedDestinations {
		args = append(args, "--allow-destination", dest)
	}
	if a.LockTimeout != 0 {
		args = append(args, "--lock-timeout", a.LockTimeout.String())
	}
	return append(append(args, "--"), a.Users...)
}

// BindFlags binds a's fields but Users (the positional arguments) to the command's flags.
func (a *Cycle) BindFlags(f *pflag.FlagSet) {
	f.StringVar(&a.Namespace, "namespace", "", "Namespace of the policy and its users (required)")
	f.StringVar(&a.Policy, "policy", "", "SyncPolicy to run (required)")
	f.StringVar(&a.Job, "job", "", "Name of the cycle (the Job); delete approvals name it (required)")
	f.StringVar(&a.Store, "store", "", "Directory of the record store (required)")
	f.StringVar(&a.Volumes, "volumes", VolumesRoot, "Directory where each PersistentVolumeClaim is mounted, by claim name")
	f.StringVar(&a.Secrets, "secrets", SecretsRoot, "Directory where the policy's Secrets are mounted, as <secret>/<key>")
	f.StringArrayVar(&a.AllowedDestinations, "allow-destination", nil, "A host:port the operator allowed the policy's Secrets to be sent to (repeatable)")
	f.IntVar(&a.Concurrency, "concurrency", DefaultConcurrency, "Users cycled at the same time")
	f.IntVar(&a.Shards, "shards", 1, "Pods sharing the users (the Indexed Job's completions)")
	f.DurationVar(&a.LockTimeout, "lock-timeout", DefaultLockTimeout, "How long a user waits for another cycle of the same user")
}

// Validate says which required flags are missing, and refuses counts below one.
func (a Cycle) Validate() error {
	if err := required([][2]string{{"namespace", a.Namespace}, {"policy", a.Policy}, {"job", a.Job}, {"store", a.Store}}); err != nil {
		return err
	}
	if a.Concurrency < 1 || a.Shards < 1 {
		return fmt.Errorf("--concurrency and --shards must be at least 1, not %d and %d", a.Concurrency, a.Shards)
	}
	return nil
}

// ForgetRecords is what `chainsync forget-records` is asked to do: delete the records of Users
// from a store and release their claims.
type ForgetRecords struct {
	// Namespace of the users.
	Namespace string
	// Job names the Job, for the logs.
	Job string
	// Store is the record store's directory as the pod sees it.
	Store string
	// LockTimeout is how long a user waits for a cycle of the same user; zero leaves it to the
	// command's default.
	LockTimeout time.Duration
	// Users are the SyncUser names, after "--".
	Users []string
}

// Args renders a as the container's arguments, subcommand first.
func (a ForgetRecords) Args() []string {
	args := []string{ForgetRecordsCommand,
		"--namespace", a.Namespace,
		"--job", a.Job,
		"--store", a.Store,
	}
	if a.LockTimeout != 0 {
		args = append(args, "--lock-timeout", a.LockTimeout.String())
	}
	return append(append(args, "--"), a.Users...)
}

// BindFlags binds a's fields but Users (the positional arguments) to the command's flags.
func (a *ForgetRecords) BindFlags(f *pflag.FlagSet) {
	f.StringVar(&a.Namespace, "namespace", "", "Namespace of the users (required)")
	f.StringVar(&a.Job, "job", "", "Name of the Job, for the logs")
	f.StringVar(&a.Store, "store", "", "Directory of the record store (required)")
	f.DurationVar(&a.LockTimeout, "lock-timeout", DefaultLockTimeout, "How long a user waits for a cycle of the same user")
}

// Validate says which required flags are missing.
func (a ForgetRecords) Validate() error {
	return required([][2]string{{"namespace", a.Namespace}, {"store", a.Store}})
}

// ReadMembers is what `chainsync read-members` is asked to do: read a SyncEnrolment's members
// from its source (a collection of one endpoint of a policy) into the enrolment's ConfigMap.
type ReadMembers struct {
	// Namespace of the enrolment and its policy.
	Namespace string
	// Enrolment is the SyncEnrolment whose spec.source to read.
	Enrolment string
	// Job names the read; the members' ConfigMap carries it.
	Job string
	// SourceHash is the spec.source the operator launched the read for: the members carry it
	// back, so a read of a source since changed is known to be stale.
	SourceHash string
	// Volumes is where the pod mounts each claim, one directory per claim name.
	Volumes string
	// Secrets is where the pod mounts the policy's Secrets, as <Secrets>/<secret>/<key>.
	Secrets string
	// AllowedDestinations are the host:ports the operator allowed the policy's Secrets to be
	// sent to, as for a cycle.
	AllowedDestinations []string
}

// Args renders a as the container's arguments, subcommand first.
func (a ReadMembers) Args() []string {
	args := []string{ReadMembersCommand,
		"--namespace", a.Namespace,
		"--enrolment", a.Enrolment,
		"--job", a.Job,
		"--source-hash", a.SourceHash,
		"--volumes", a.Volumes,
		"--secrets", a.Secrets,
	}
	for _, dest := range a.AllowedDestinations {
		args = append(args, "--allow-destination", dest)
	}
	return args
}

// BindFlags binds a's fields to the command's flags.
func (a *ReadMembers) BindFlags(f *pflag.FlagSet) {
	f.StringVar(&a.Namespace, "namespace", "", "Namespace of the enrolment (required)")
	f.StringVar(&a.Enrolment, "enrolment", "", "SyncEnrolment whose source to read (required)")
	f.StringVar(&a.Job, "job", "", "Name of the read (the Job) (required)")
	f.StringVar(&a.SourceHash, "source-hash", "", "The spec.source the read was launched for, as the operator hashed it")
	f.StringVar(&a.Volumes, "volumes", VolumesRoot, "Directory where each PersistentVolumeClaim is mounted, by claim name")
	f.StringVar(&a.Secrets, "secrets", SecretsRoot, "Directory where the policy's Secrets are mounted, as <secret>/<key>")
	f.StringArrayVar(&a.AllowedDestinations, "allow-destination", nil, "A host:port the operator allowed the policy's Secrets to be sent to (repeatable)")
}

// Validate says which required flags are missing.
func (a ReadMembers) Validate() error {
	return required([][2]string{{"namespace", a.Namespace}, {"enrolment", a.Enrolment}, {"job", a.Job}})
}

// ParseReadMembers parses a `chainsync read-members` command line as ParseCycle does.
func ParseReadMembers(args []string) (ReadMembers, error) {
	var a ReadMembers
	var rest []string
	err := parse(args, ReadMembersCommand, a.BindFlags, &rest)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("read-members takes no arguments, got %q", rest)
	}
	if err == nil {
		err = a.Validate()
	}
	return a, err
}

// required names the flags, given as {name, value}, whose value is empty.
func required(flags [][2]string) error {
	var missing []string
	for _, f := range flags {
		if f[1] == "" {
			missing = append(missing, "--"+f[0])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("required flags not set: %s", strings.Join(missing, ", "))
	}
	return nil
}

// ParseCycle parses a `chainsync cycle` command line (subcommand first, as Args renders it) the
// way the command does. For tests and tools: the operator never reads a Job back through it.
func ParseCycle(args []string) (Cycle, error) {
	var a Cycle
	err := parse(args, CycleCommand, a.BindFlags, &a.Users)
	if err == nil {
		err = a.Validate()
	}
	return a, err
}

// ParseForgetRecords parses a `chainsync forget-records` command line as ParseCycle does.
func ParseForgetRecords(args []string) (ForgetRecords, error) {
	var a ForgetRecords
	err := parse(args, ForgetRecordsCommand, a.BindFlags, &a.Users)
	if err == nil {
		err = a.Validate()
	}
	return a, err
}

func parse(args []string, command string, bind func(*pflag.FlagSet), users *[]string) error {
	if len(args) == 0 || args[0] != command {
		return fmt.Errorf("not a %s command line: %q", command, args)
	}
	f := pflag.NewFlagSet(command, pflag.ContinueOnError)
	bind(f)
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	if f.NArg() > 0 {
		*users = f.Args()
	}
	return nil
}
