package connector

import (
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by an ItemError when an update or delete names an ID
// the endpoint does not hold. The engine treats a delete of a missing item as
// done, and an update of a missing item as a delete on that side.
var ErrNotFound = errors.New("item not found")

// ItemError is a failure that concerns one item only (a constraint violation,
// a value the endpoint rejects, a row that cannot be decoded). The engine
// reports it, retries the item on later cycles with backoff, and carries on
// with the rest of the cycle.
//
// Every other error a connector returns is an endpoint failure (unreachable,
// bad credentials, disk full): the engine fails the whole cycle and changes
// no records.
type ItemError struct {
	// ID is the item's native ID, or, for a create, the engine's key of the
	// item being created; empty when the item cannot be identified at all.
	ID  string
	Err error
}

func (e *ItemError) Error() string { return fmt.Sprintf("item %q: %v", e.ID, e.Err) }
func (e *ItemError) Unwrap() error { return e.Err }

// NewItemError wraps err as a failure of the item with the given ID.
func NewItemError(id string, err error) *ItemError { return &ItemError{ID: id, Err: err} }

// IsItemError reports whether err concerns one item only.
func IsItemError(err error) bool {
	var ie *ItemError
	return errors.As(err, &ie)
}

// IsEndpointFailure reports whether err fails the whole endpoint: any non-nil
// error that is not an ItemError.
func IsEndpointFailure(err error) bool { return err != nil && !IsItemError(err) }

// ErrInvalidConfig is matched (errors.Is) by a connector's errors that the policy's author fixes
// in the spec: a field that cannot work, a table or column that does not exist. They fail the
// cycle as endpoint failures do, but they are not outages, and a person is told which field.
var ErrInvalidConfig = errors.New("invalid configuration")

// InvalidConfig marks err as a configuration error, keeping its message; nil stays nil.
func InvalidConfig(err error) error {
	if err == nil {
		return nil
	}
	return &configError{err}
}

type configError struct{ err error }

func (e *configError) Error() string        { return e.err.Error() }
func (e *configError) Unwrap() error        { return e.err }
func (e *configError) Is(target error) bool { return target == ErrInvalidConfig }
