// Package members is the contract between the Job that reads an enrolment's source and the
// operator that enrols what it read: the Job writes the members it found to a ConfigMap owned by
// the SyncEnrolment, gzipped JSON, and the operator reads them from there. Neither side imports
// the other.
package members

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Member is one member found in a source: one future SyncUser.
type Member struct {
	// Key identifies the member across reads (the row's key fields), so a member whose email
	// changes keeps its SyncUser.
	Key        string            `json:"key"`
	Email      string            `json:"email,omitempty"`
	Name       string            `json:"name,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// List is what one read of a source found.
type List struct {
	// Format is FormatVersion; a reader refuses another.
	Format int `json:"format"`
	// Job is the Job that read them.
	Job string `json:"job"`
	// SourceHash is the spec.source the read was for, as the operator hashed it when it launched
	// the Job: a read of a source changed since is stale.
	SourceHash string `json:"sourceHash,omitempty"`
	// ReadTime is when the read started.
	ReadTime time.Time `json:"readTime"`
	// Members in the source's order.
	Members []Member `json:"members"`
	// Unreadable counts rows the connector could not read (an item error); they are left out,
	// and, as they might be members, nobody is removed by a read that had any.
	Unreadable int `json:"unreadable,omitempty"`
}

// FormatVersion is the version of List's encoding.
const FormatVersion = 1

// ConfigMap layout.
const (
	// DataKey holds the gzipped JSON List in the ConfigMap's binaryData.
	DataKey = "members.json.gz"
	// maxEncoded keeps a List within what one ConfigMap holds (1 MiB in all, names and
	// metadata included).
	maxEncoded = 1000 * 1024
)

// ConfigMapName is the ConfigMap holding an enrolment's last read.
func ConfigMapName(enrolment string) string {
	const suffix = "-members"
	if len(enrolment) > 253-len(suffix) {
		enrolment = enrolment[:253-len(suffix)]
	}
	return enrolment + suffix
}

// Encode returns l gzipped, or an error when it is too large for a ConfigMap.
func Encode(l List) ([]byte, error) {
	l.Format = FormatVersion
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(l); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > maxEncoded {
		return nil, fmt.Errorf("%d members take %d bytes compressed, more than one ConfigMap holds (%d): split the enrolment, with a where clause or collection each",
			len(l.Members), buf.Len(), maxEncoded)
	}
	return buf.Bytes(), nil
}

// Decode reads what Encode wrote.
func Decode(b []byte) (List, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return List{}, fmt.Errorf("reading the members: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 256<<20))
	if err != nil {
		return List{}, fmt.Errorf("reading the members: %w", err)
	}
	var l List
	if err := json.Unmarshal(raw, &l); err != nil {
		return List{}, fmt.Errorf("reading the members: %w", err)
	}
	if l.Format != FormatVersion {
		return List{}, fmt.Errorf("the members are in format %d; this version reads format %d", l.Format, FormatVersion)
	}
	return l, nil
}
