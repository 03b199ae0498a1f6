package vfs

import "errors"

// Sentinels of the core. Package fs maps each one to an errno in its table (fs/errno.go), under
// its own name (errStale is ErrStale...); Errors lists them so that a test there can check that
// none is missing.
var (
	// ErrStale marks an operation on an object generation that is gone: the object was
	// overwritten or deleted behind the mount while this mount still referred to the old
	// generation.
	ErrStale = errors.New("object generation is gone (changed behind the mount)")
	// ErrExists: a new object's name is taken.
	ErrExists = errors.New("exists")
	// ErrNotEmpty: a directory has objects below it.
	ErrNotEmpty = errors.New("directory not empty")
)

// Errors are the core's sentinels.
var Errors = []error{ErrStale, ErrExists, ErrNotEmpty, ErrReadOnly, ErrDraining,
	ErrReservedName, ErrNameTooLong, ErrObjectNameTooLong, ErrBadObjectName, ErrIsDir, ErrNotDir, ErrIntoItself,
	ErrHiddenName, ErrNotWritable, ErrCrossConnection, ErrNotUploaded, ErrSpecialNoPOSIX, ErrFileType}
