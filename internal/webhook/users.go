package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/go-openapi/jsonpointer"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// userIndex finds the SyncUsers currently on a policy (status.policy), all of them or by email
// or name: one index with three kinds of keys, so a call is answered from the cache whatever
// the receiver looks for.
const userIndex = "webhook.users"

// userIndexKeys are the keys a user is found under. Emails are kept in lower case: they are
// matched without regard to case, as mail systems match them.
func userIndexKeys(u *syncv1alpha1.SyncUser) []string {
	policy := u.Status.Policy
	if policy == "" {
		return nil
	}
	keys := []string{allUsersKey(policy)}
	if e := u.Spec.Identity.Email; e != "" {
		keys = append(keys, emailKey(policy, e))
	}
	if n := u.Spec.Identity.Name; n != "" {
		keys = append(keys, nameKey(policy, n))
	}
	return keys
}

func allUsersKey(policy string) string     { return "p\x00" + policy }
func emailKey(policy, email string) string { return "e\x00" + policy + "\x00" + strings.ToLower(email) }
func nameKey(policy, name string) string   { return "n\x00" + policy + "\x00" + name }

// maxNamesPerCall bounds the users one call can name, so a large array in a body costs no more
// than a hundred lookups.
const maxNamesPerCall = 100

// errBadBody is a body that is not JSON, when the receiver reads one.
type errBadBody struct{ err error }

func (e errBadBody) Error() string { return "the body is not JSON: " + e.err.Error() }

// lookupKeys are the index keys of the users a call names: every user of the policy, or those
// whose email or name the receiver's pointer finds in the body. A pointer that finds nothing,
// or finds neither a string nor an array of strings, names no user.
func lookupKeys(users syncv1alpha1.ReceiverUsers, policy string, body []byte) ([]string, error) {
	if users.AllUsers {
		return []string{allUsersKey(policy)}, nil
	}
	pointer, key := users.EmailPointer, emailKey
	if pointer == "" {
		pointer, key = users.NamePointer, nameKey
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errBadBody{err}
	}
	p, err := jsonpointer.New(pointer)
	if err != nil {
		return nil, fmt.Errorf("spec.user: pointer %q: %w", pointer, err)
	}
	found, _, err := p.Get(doc)
	if err != nil {
		return nil, nil
	}
	var keys []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" && len(keys) < maxNamesPerCall {
			keys = append(keys, key(policy, s))
		}
	}
	if list, ok := found.([]any); ok {
		for _, v := range list {
			add(v)
		}
	} else {
		add(found)
	}
	return keys, nil
}

// usersNamed lists, from the cache, the users under the given index keys, each once.
func usersNamed(ctx context.Context, c client.Reader, namespace string, keys []string) ([]client.ObjectKey, error) {
	seen := map[client.ObjectKey]bool{}
	var out []client.ObjectKey
	for _, k := range keys {
		var list syncv1alpha1.SyncUserList
		if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{userIndex: k},
			client.UnsafeDisableDeepCopy); err != nil { // Only the names are read.
			return nil, fmt.Errorf("listing users: %w", err)
		}
		for i := range list.Items {
			if key := client.ObjectKeyFromObject(&list.Items[i]); !seen[key] {
				seen[key] = true
				out = append(out, key)
			}
		}
	}
	return out, nil
}
