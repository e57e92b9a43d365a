package members

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestAListSurvivesTheConfigMap(t *testing.T) {
	g := NewWithT(t)
	in := List{Job: "j1", ReadTime: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Unreadable: 2,
		Members: []Member{{Key: "E1", Email: "a@example.com", Attributes: map[string]string{"dept": "Sales"}}, {Key: "E2", Name: "bob"}}}
	b, err := Encode(in)
	g.Expect(err).NotTo(HaveOccurred())
	out, err := Decode(b)
	g.Expect(err).NotTo(HaveOccurred())
	in.Format = FormatVersion
	g.Expect(out).To(Equal(in))
}

func TestTooManyMembersForAConfigMapIsAnErrorSayingWhatToDo(t *testing.T) {
	g := NewWithT(t)
	var l List
	for i := range 300000 {
		// Random-looking keys compress badly, as real employee numbers and emails do.
		l.Members = append(l.Members, Member{Key: fmt.Sprintf("%x", uint64(i)*0x9E3779B97F4A7C15), Email: fmt.Sprintf("%x@example.com", uint64(i)*0xC2B2AE3D27D4EB4F)})
	}
	_, err := Encode(l)
	g.Expect(err).To(MatchError(ContainSubstring("split the enrolment")))
}

func TestDamagedMembersAreRefused(t *testing.T) {
	g := NewWithT(t)
	b, err := Encode(List{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Decode(b[:len(b)-4])
	g.Expect(err).To(HaveOccurred())
	_, err = Decode([]byte("not gzip"))
	g.Expect(err).To(MatchError(ContainSubstring("reading the members")))
}

func TestAnotherFormatIsRefused(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"format":2,"members":[]}`))
	g.Expect(zw.Close()).To(Succeed())
	_, err := Decode(buf.Bytes())
	g.Expect(err).To(MatchError(ContainSubstring("format 2")))
}
