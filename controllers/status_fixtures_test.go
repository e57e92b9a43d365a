package controllers

import (
	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// pointers is users as the user index hands them out.
func pointers(users []syncv1alpha1.SyncUser) []*syncv1alpha1.SyncUser {
	out := make([]*syncv1alpha1.SyncUser, len(users))
	for i := range users {
		out[i] = &users[i]
	}
	return out
}
