package csv

// RejectedRow is a row of an export that no user's cycle can take: it is
// malformed (cells missing or extra, a broken quote) and its scope cells,
// which say whose it is, cannot be read.
type RejectedRow struct {
	// File is the export's file name; Line is where the row starts in it,
	// counting from 1 with the header.
	File string
	Line int
	// Reason says what is wrong with the row.
	Reason string
	// Header is the file's header row; Cells are the row's cells as far as
	// they could be read.
	Header []string
	Cells  []string
}
