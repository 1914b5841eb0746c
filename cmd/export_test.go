package cmd

// The --json documents of the commands, under names the tests of package
// cmd_test can use: they decode a command's output into the very type it
// was encoded from, so a test and the output cannot drift apart.
type (
	FetchResult  = fetchResult  // backup-fetch --json
	DrillResult  = drillResult  // restore-drill --json
	PlanOutput   = planOutput   // delete --json
	VerifyResult = verifyResult // verify --json prints a list of them
	ListEntry    = listEntry    // backup-list --json prints a list of them
)
