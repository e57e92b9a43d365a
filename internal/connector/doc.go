// Package connector is the contract between the sync engine and the systems it
// keeps in step (csv files, SQL databases, later http, carddav, caldav, ldap).
//
// A connector reads one user's items of one entity, optionally reads only the
// changes since a watermark, and applies batches of creates, updates and
// deletes. It never decides what to sync: the engine does, and the connector
// only has to be faithful and tell item failures apart from endpoint failures.
//
// Rules every implementation follows:
//
//   - ReadAll streams: it yields items one at a time and never needs the
//     whole entity in memory. Order does not matter; the engine sorts.
//   - Field values are built with the constructors in value.go so that the
//     same data read from different systems (a csv "42", an SQL integer 42)
//     has the same canonical text and therefore the same content hash.
//   - An error that is not an *ItemError (see errors.go) is an endpoint
//     failure: the engine stops the cycle and changes no records.
//   - Write applies a batch and reports one WriteResult per Write, in order.
//     A failed item is reported in its WriteResult, not as the returned error.
//   - When Capabilities.Origin is true, the Origin string given on a create or
//     update is stored with the item (a hidden column or property) and
//     returned on every read. The engine uses it to recognise, after a crash,
//     items it created but could not record.
package connector
