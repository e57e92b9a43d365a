package records

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// maxDirName keeps names well under the 255-byte limit of common filesystems.
const maxDirName = 200

// DirName maps a user identity to the name of its folder in the store.
//
// The mapping is injective and safe on any filesystem: lower-case ASCII
// letters, digits, '@', '-' and '.' (not leading) pass through, and every
// other byte becomes '_' and two lower-case hex digits. The result is all
// lower-case ASCII, so identities differing only in case ("Ann@x" and
// "ann@x") stay distinct even on case-folding or normalising filesystems, and
// it never contains a separator or equals "." or "..". An encoding longer than
// maxDirName is shortened to a prefix, '~' and the SHA-256 of the identity;
// '~' appears in no other name, so long and short names cannot collide.
func DirName(identity string) (string, error) {
	if identity == "" {
		return "", errors.New("empty user identity")
	}
	var b strings.Builder
	for i := 0; i < len(identity); i++ {
		c := identity[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '@', c == '-', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	name := b.String()
	if len(name) > maxDirName {
		sum := sha256.Sum256([]byte(identity))
		name = name[:maxDirName-65] + "~" + hex.EncodeToString(sum[:])
	}
	return name, nil
}

// IdentityFromDirName inverts DirName for names that were not shortened;
// shortened names report ok false (the identity is kept inside the folder).
func IdentityFromDirName(name string) (identity string, ok bool) {
	if strings.Contains(name, "~") {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '_' {
			b.WriteByte(name[i])
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		var c byte
		if _, err := fmt.Sscanf(name[i+1:i+3], "%02x", &c); err != nil {
			return "", false
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), true
}
