package verify

import "github.com/pglmon/pglmon/internal/seqcompare"

// SequenceResult compares one sequence on both sides (package seqcompare).
type SequenceResult = seqcompare.Result

// Sequence results (package seqcompare).
const (
	SeqOK            = seqcompare.OK
	SeqBehind        = seqcompare.Behind
	SeqMissing       = seqcompare.Missing
	SeqNotReplicated = seqcompare.NotReplicated
	SeqUnreadable    = seqcompare.Unreadable
)
