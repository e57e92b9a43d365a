package radicaletest

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	os.Exit(Main(m, map[string]string{"ann@example.com": "ann-pw", "bob@example.com": "bob-pw"}))
}

// TestEachUserReachesOnlyTheirOwnCollections checks the rights the connector tests rely on: the
// service account everywhere, a user in their own principal only.
func TestEachUserReachesOnlyTheirOwnCollections(t *testing.T) {
	s := Current(t)
	s.MakeCollection(t, "/bob@example.com/contacts/", AddressBook, "Contacts")
	s.Put(t, "/bob@example.com/contacts/b.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:Bob's friend\r\nEND:VCARD\r\n")
	get := func(user, password string) int {
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(s.URL, "/")+"/bob@example.com/contacts/b.vcf", nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		user, password string
		want           int
	}{
		{ServiceUser, ServicePassword, http.StatusOK},
		{"bob@example.com", "bob-pw", http.StatusOK},
		{"ann@example.com", "ann-pw", http.StatusForbidden},
		{"bob@example.com", "wrong", http.StatusUnauthorized},
	} {
		if got := get(tc.user, tc.password); got != tc.want {
			t.Errorf("%s reading Bob's card: %d, want %d", tc.user, got, tc.want)
		}
	}
	objs := s.Objects(t, "/bob@example.com/contacts/")
	if len(objs) != 1 || !strings.Contains(objs[0].Data, "Bob's friend") {
		t.Errorf("Objects: %+v", objs)
	}
	s.Write(t, "/bob@example.com/contacts/c.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Written to the storage\r\nEND:VCARD\r\n")
	if got := len(s.Objects(t, "/bob@example.com/contacts/")); got != 2 {
		t.Errorf("an object written to the storage is served: %d objects, want 2", got)
	}
}
