// Package credentials decides where a Secret's values may be sent. A Secret's owner lists the
// destinations in an annotation; a policy author, who may not be able to read the Secret, can
// only point an endpoint at one of them. Without this, anyone who may create a SyncPolicy could
// name any Secret of the namespace and a server of their own, and receive its password.
package credentials

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Destinations is a parsed allowed-destinations annotation.
type Destinations struct {
	entries []entry
}

type entry struct {
	// host is a lower-case host name or address, or "*.domain" for any subdomain of domain.
	host string
	// port is empty for any port.
	port string
	// urlPrefix is set for URL entries: the scheme, host and path prefix a URL must start with.
	urlPrefix *url.URL
}

// Parse reads an allowed-destinations annotation: entries separated by commas or white space,
// each "host", "host:port", "*.domain", "*.domain:port" or a URL prefix "https://host/path/".
func Parse(annotation string) (Destinations, error) {
	var d Destinations
	fields := strings.FieldsFunc(annotation, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	for _, f := range fields {
		e, err := parseEntry(f)
		if err != nil {
			return Destinations{}, fmt.Errorf("destination %q: %w", f, err)
		}
		d.entries = append(d.entries, e)
	}
	return d, nil
}

func parseEntry(s string) (entry, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return entry{}, err
		}
		if u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ldap" && u.Scheme != "ldaps" {
			return entry{}, fmt.Errorf("scheme %q is not http, https, ldap or ldaps", u.Scheme)
		}
		if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return entry{}, fmt.Errorf("a URL prefix is scheme://host[:port]/path, without user, query or fragment")
		}
		u.Host = strings.ToLower(u.Host)
		if u.Path == "" {
			u.Path = "/"
		}
		return entry{urlPrefix: u}, nil
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	host = strings.ToLower(host)
	if host == "" || host == "*" || strings.ContainsAny(host, "/@?#") || strings.Contains(host[1:], "*") ||
		(strings.HasPrefix(host, "*") && !strings.HasPrefix(host, "*.")) {
		return entry{}, fmt.Errorf("not a host, host:port, *.domain or URL prefix")
	}
	if port != "" && !isPort(port) {
		return entry{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return entry{host: host, port: port}, nil
}

func isPort(s string) bool {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s {
		return false
	}
	return n >= 1 && n <= 65535
}

// Allows reports whether a value may be sent to dest: "host:port" for connections, or a URL for
// URL-based endpoints.
func (d Destinations) Allows(dest string) bool {
	if strings.Contains(dest, "://") {
		u, err := url.Parse(dest)
		if err != nil || u.User != nil {
			return false
		}
		for _, e := range d.entries {
			if e.urlPrefix != nil && urlHasPrefix(u, e.urlPrefix) {
				return true
			}
		}
		return false
	}
	host, port, err := net.SplitHostPort(dest)
	if err != nil {
		return false
	}
	host = strings.ToLower(host)
	for _, e := range d.entries {
		if e.urlPrefix != nil || (e.port != "" && e.port != port) {
			continue
		}
		if domain, wild := strings.CutPrefix(e.host, "*"); wild {
			if strings.HasSuffix(host, domain) && len(host) > len(domain) {
				return true
			}
		} else if host == e.host {
			return true
		}
	}
	return false
}

// urlHasPrefix compares scheme and host exactly, and the path by whole segments, so that the
// prefix "https://api.example.com/v1/" does not allow "https://api.example.com/v1-evil".
func urlHasPrefix(u, prefix *url.URL) bool {
	if !strings.EqualFold(u.Scheme, prefix.Scheme) || !strings.EqualFold(u.Host, prefix.Host) {
		return false
	}
	p, want := u.EscapedPath(), prefix.EscapedPath()
	if p == "" {
		p = "/"
	}
	if strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return false
	}
	if !strings.HasSuffix(want, "/") {
		return p == want || strings.HasPrefix(p, want+"/")
	}
	return strings.HasPrefix(p, want)
}
