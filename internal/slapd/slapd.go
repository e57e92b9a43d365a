// Package slapd runs an OpenLDAP server from the system's binary (Debian's slapd package) with a
// configuration of its own: cn=config made once by slapadd in a directory of the caller's, one
// mdb database, the standard schemas plus the caller's, and content synchronisation (RFC 4533,
// the syncprov overlay, with a session log so that deletions are told by entryUUID), and the
// memberOf overlay, so a group's members are found with a filter (memberOf=<group DN>). The ldap
// connector's tests start one in a temporary directory; `chainsync local` keeps one in its data
// directory for the demo.
package slapd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// InstallHint says how to get slapd where it is missing.
const InstallHint = "apt-get install slapd (or hack/ensure-slapd.sh)"

// Find finds OpenLDAP's server on PATH, or where Debian's slapd package puts it; "" when it is
// not installed.
func Find(lookPath func(string) (string, error), exists func(string) bool) string {
	if p, err := lookPath("slapd"); err == nil {
		return p
	}
	if exists("/usr/sbin/slapd") {
		return "/usr/sbin/slapd"
	}
	return ""
}

// FindInstalled is Find on this machine.
func FindInstalled() string {
	return Find(exec.LookPath, func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	})
}

// Config is a server's configuration, written once into Dir.
type Config struct {
	// Dir holds the configuration (config/), the database (data/), the pid file and the log.
	Dir string
	// Suffix is the database's naming context, managed by RootDN with RootPassword, who is
	// allowed everything and exempt from limits.
	Suffix, RootDN, RootPassword string
	// ServiceDN may read and write the whole suffix and is held to SizeLimit, as a connector's
	// bind account is; everyone else may only bind.
	ServiceDN string
	// SizeLimit is the most entries a search that does not page its results (RFC 2696) gets;
	// 0 keeps slapd's default (500).
	SizeLimit int
	// Schema is extra LDIF: children of cn=schema,cn=config.
	Schema string
	// TLSCA, TLSCert and TLSKey are PEM files for LDAPS and StartTLS; empty for neither.
	TLSCA, TLSCert, TLSKey string
	// NoSync skips the database's fsync: for a throwaway server, never one whose data is kept.
	NoSync bool
}

// ConfigDir is where a server's cn=config is in dir; it names the server's process too.
func ConfigDir(dir string) string { return filepath.Join(dir, "config") }

// Configured reports whether dir holds a configuration from an earlier Init.
func Configured(dir string) bool {
	_, err := os.Stat(filepath.Join(ConfigDir(dir), "cn=config.ldif"))
	return err == nil
}

// Init writes cfg's configuration into cfg.Dir with slapadd, and creates the empty database.
func Init(bin string, cfg Config) error {
	for _, d := range []string{ConfigDir(cfg.Dir), filepath.Join(cfg.Dir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	ldif := filepath.Join(cfg.Dir, "config.ldif")
	if err := os.WriteFile(ldif, []byte(cfg.configLDIF()), 0o600); err != nil {
		return fmt.Errorf("writing slapd's configuration: %w", err)
	}
	defer os.Remove(ldif)
	slapadd := exec.Command(bin, "-T", "add", "-n", "0", "-F", ConfigDir(cfg.Dir), "-l", ldif)
	if out, err := slapadd.CombinedOutput(); err != nil {
		// A half-made configuration would make the next Init fail on its existing entries.
		_ = os.RemoveAll(ConfigDir(cfg.Dir))
		return fmt.Errorf("slapadd of the configuration: %w\n%s", err, out)
	}
	return nil
}

// configLDIF is the server's cn=config.
func (cfg Config) configLDIF() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: %s/slapd.pid\n", cfg.Dir)
	if cfg.TLSCert != "" {
		fmt.Fprintf(&b, "olcTLSCACertificateFile: %s\nolcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n",
			cfg.TLSCA, cfg.TLSCert, cfg.TLSKey)
	}
	b.WriteString(`
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: syncprov
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

`)
	for _, name := range []string{"core", "cosine", "inetorgperson", "nis"} {
		body, err := os.ReadFile(filepath.Join("/etc/ldap/schema", name+".ldif"))
		if err != nil {
			// slapadd names the missing file; the package is incomplete.
			fmt.Fprintf(&b, "include: file:///etc/ldap/schema/%s.ldif\n\n", name)
			continue
		}
		b.Write(body)
		b.WriteString("\n")
	}
	if cfg.Schema != "" {
		b.WriteString(cfg.Schema)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, `dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %[2]s
olcRootDN: %[3]s
olcRootPW: %[4]s
olcDbDirectory: %[1]s/data
olcDbMaxSize: 1073741824
olcDbNoSync: %[5]s
olcDbIndex: objectClass eq
olcDbIndex: entryUUID,entryCSN eq
`, cfg.Dir, cfg.Suffix, cfg.RootDN, cfg.RootPassword, strings.ToUpper(fmt.Sprint(cfg.NoSync)))
	if cfg.SizeLimit > 0 {
		fmt.Fprintf(&b, "olcLimits: * size.soft=%[1]d size.hard=%[1]d size.prtotal=unlimited\n", cfg.SizeLimit)
	}
	fmt.Fprintf(&b, `olcAccess: to * by dn.exact="%s" write by anonymous auth by * none

dn: olcOverlay=syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: syncprov
olcSpSessionlog: 10000

dn: olcOverlay=memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: memberof
`, cfg.ServiceDN)
	return b.String()
}

// Server is a running slapd.
type Server struct {
	// URLs are what it listens on: ldap://host:port, ldaps://host:port.
	URLs []string

	dir                  string
	rootDN, rootPassword string
	cmd                  *exec.Cmd
	exited               chan struct{}
	waitErr              error
}

// ErrExited is slapd stopping before it accepted a connection: with `-d 0` it says nothing, and
// the usual cause is a port taken meanwhile.
var ErrExited = errors.New("slapd exited")

// Start runs slapd on the configuration Init wrote in dir, listening on urls (the first one
// plain LDAP, which Start binds to as rootDN to know the server ready), and returns once it
// answers. Its output goes to dir/slapd.log. It runs in a process group of its own and is killed
// when the process that started it dies.
func Start(bin, dir string, urls []string, rootDN, rootPassword string) (*Server, error) {
	logPath := filepath.Join(dir, "slapd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening slapd's log: %w", err)
	}
	defer logf.Close()
	listen := make([]string, len(urls))
	for i, u := range urls {
		listen[i] = u + "/"
	}
	s := &Server{URLs: urls, dir: dir, rootDN: rootDN, rootPassword: rootPassword}
	// -d keeps slapd in the foreground, so it is ours to wait for.
	s.cmd = exec.Command(bin, "-d", "0", "-F", ConfigDir(dir), "-h", strings.Join(listen, " "))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting slapd: %w", err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := s.Dial()
		if err == nil {
			conn.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%w (%v):\n%s", ErrExited, s.waitErr, tail(log))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("slapd did not accept connections within 30s: %v\n%s", err, tail(log))
		}
	}
}

func tail(log []byte) []byte {
	const keep = 4000
	if len(log) > keep {
		return log[len(log)-keep:]
	}
	return log
}

// Dial opens a connection to the first URL, bound as the root DN.
func (s *Server) Dial() (*ldap.Conn, error) {
	conn, err := ldap.DialURL(s.URLs[0], ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return nil, err
	}
	// Something else on the port may accept and never answer: Start must not wait for it.
	conn.SetTimeout(5 * time.Second)
	if err := conn.Bind(s.rootDN, s.rootPassword); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 30 seconds) and waits for it.
func (s *Server) Stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.Kill()
		return errors.New("slapd did not stop within 30s of SIGTERM; killed")
	}
	return nil
}

// Kill stops the server abruptly and waits for it.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// FreePort is a loopback TCP port no one listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
