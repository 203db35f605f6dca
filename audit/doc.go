// Package audit records who did what to which entity, in which tenant,
// and when: the audit trail of a service.
//
// Draft: the full package documentation is written with the package.
package audit
