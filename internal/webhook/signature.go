package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// verified says whether the request proves it knows token, as the receiver's signature
// scheme asks. Every comparison takes the same time whatever the bytes compared, so a caller
// learns nothing from how long a refusal takes.
func verified(sig syncv1alpha1.ReceiverSignature, token []byte, header http.Header, body []byte) bool {
	value, ok := cutPrefixFold(header.Get(sig.HeaderName()), sig.HeaderPrefix())
	if !ok || value == "" {
		return false
	}
	if sig.Scheme == syncv1alpha1.BearerSignature {
		// Hashed first so that the comparison does not stop early on a length mismatch.
		given, want := sha256.Sum256([]byte(value)), sha256.Sum256(token)
		return subtle.ConstantTimeCompare(given[:], want[:]) == 1
	}
	var given []byte
	var err error
	if sig.Encoding == syncv1alpha1.Base64Encoding {
		given, err = base64.StdEncoding.DecodeString(value)
	} else {
		given, err = hex.DecodeString(value)
	}
	if err != nil {
		return false
	}
	return hmac.Equal(given, Sign(token, body))
}

// Sign is the HMAC-SHA256 of body keyed with token: what a sender puts in the header.
func Sign(token, body []byte) []byte {
	mac := hmac.New(sha256.New, token)
	mac.Write(body)
	return mac.Sum(nil)
}

// cutPrefixFold removes prefix from s without regard to case ("Bearer " and "bearer " are the
// same scheme, RFC 9110 section 11.1), and says whether it was there.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(s[len(prefix):]), true
}
