package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignatureScheme is how a caller of a receiver proves it knows the token.
// +kubebuilder:validation:Enum=HMACSHA256;Bearer
type SignatureScheme string

const (
	// HMACSHA256Signature: a header carries the HMAC-SHA256 of the request body keyed with the
	// token, as GitHub, Gitea and most SaaS webhooks send it. The token never crosses the wire.
	HMACSHA256Signature SignatureScheme = "HMACSHA256"
	// BearerSignature: a header carries the token itself, for senders that cannot sign.
	BearerSignature SignatureScheme = "Bearer"
)

// SignatureEncoding is how an HMAC is written in its header.
// +kubebuilder:validation:Enum=hex;base64
type SignatureEncoding string

const (
	// HexEncoding writes the HMAC as lowercase or uppercase hexadecimal (GitHub, Gitea).
	HexEncoding SignatureEncoding = "hex"
	// Base64Encoding writes the HMAC in standard base64 (Shopify, Slack-style senders).
	Base64Encoding SignatureEncoding = "base64"
)

// Default headers of the signature schemes, used when signature.header is empty.
const (
	// DefaultSignatureHeader carries an HMACSHA256 signature.
	DefaultSignatureHeader = "X-Signature-256"
	// DefaultBearerHeader carries a Bearer token, after DefaultBearerPrefix.
	DefaultBearerHeader = "Authorization"
	// DefaultBearerPrefix comes before the token in DefaultBearerHeader.
	DefaultBearerPrefix = "Bearer "
)

// ReceiverSecretReference names the Secret of a receiver's token. The Secret must be labelled
// sync.chainsync.dev/credentials=true, as every Secret chainsync reads.
type ReceiverSecretReference struct {
	// name of the Secret, in the receiver's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// key in the Secret that holds the token.
	// +optional
	// +kubebuilder:default=token
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// ReceiverSignature says where a call carries its proof and how it is written.
// +kubebuilder:validation:XValidation:rule="self.scheme != 'Bearer' || !has(self.encoding) || self.encoding == 'hex'",message="encoding is for HMACSHA256 signatures; a Bearer token is compared as sent"
type ReceiverSignature struct {
	// scheme is HMACSHA256 (the header holds the HMAC-SHA256 of the body keyed with the token)
	// or Bearer (the header holds the token itself).
	// +optional
	// +kubebuilder:default=HMACSHA256
	Scheme SignatureScheme `json:"scheme,omitempty"`

	// header that carries the signature or the token. Empty means X-Signature-256 for
	// HMACSHA256 and "Authorization" (with the prefix "Bearer ") for Bearer; GitHub sends
	// X-Hub-Signature-256, GitLab a plain token in X-Gitlab-Token.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9_]*$`
	Header string `json:"header,omitempty"`

	// prefix comes before the signature in the header, for example "sha256=" (GitHub). It is
	// matched without regard to case. Empty means none, except for Bearer with no header
	// given, where it is "Bearer ".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Prefix string `json:"prefix,omitempty"`

	// encoding of an HMACSHA256 signature: hex or base64.
	// +optional
	// +kubebuilder:default=hex
	Encoding SignatureEncoding `json:"encoding,omitempty"`
}

// HeaderName is the header the signature is read from.
func (s ReceiverSignature) HeaderName() string {
	switch {
	case s.Header != "":
		return s.Header
	case s.Scheme == BearerSignature:
		return DefaultBearerHeader
	default:
		return DefaultSignatureHeader
	}
}

// HeaderPrefix is what comes before the signature in the header.
func (s ReceiverSignature) HeaderPrefix() string {
	if s.Header == "" && s.Prefix == "" && s.Scheme == BearerSignature {
		return DefaultBearerPrefix
	}
	return s.Prefix
}

// ReceiverUsers says which users of the policy a call asks to cycle.
// +kubebuilder:validation:XValidation:rule="[has(self.emailPointer), has(self.namePointer), has(self.allUsers) && self.allUsers].filter(x, x).size() == 1",message="set exactly one of emailPointer, namePointer or allUsers: true"
type ReceiverUsers struct {
	// emailPointer is an RFC 6901 JSON pointer into the call's JSON body, for example
	// "/user/email", to a string (or an array of strings) matched against the users'
	// spec.identity.email, without regard to case.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^(/([^~/]|~[01])*)+$`
	EmailPointer string `json:"emailPointer,omitempty"`

	// namePointer is an RFC 6901 JSON pointer into the call's JSON body, for example
	// "/sender/login", to a string (or an array of strings) matched against the users'
	// spec.identity.name.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^(/([^~/]|~[01])*)+$`
	NamePointer string `json:"namePointer,omitempty"`

	// allUsers: every call cycles every user currently on the policy; the body is not read.
	// +optional
	AllUsers bool `json:"allUsers,omitempty"`
}

// ReceiverLimits bound what a receiver accepts, so a noisy or hostile sender costs little.
type ReceiverLimits struct {
	// requestsPerSecond a receiver accepts, on average, on each replica of the operator; calls
	// beyond it and the burst are answered 429 with Retry-After.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	RequestsPerSecond int32 `json:"requestsPerSecond,omitempty"`

	// burst is how many calls may come at once above requestsPerSecond.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Burst int32 `json:"burst,omitempty"`

	// maxBodyBytes is the largest body accepted; a larger one is answered 413 unread.
	// +optional
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=16777216
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
}

// SyncReceiverSpec declares a webhook that requests a cycle now for the users a call names.
type SyncReceiverSpec struct {
	// policyRef is the SyncPolicy, in the receiver's namespace, whose users the calls cycle.
	// +required
	PolicyRef PolicyReference `json:"policyRef"`

	// secretRef names the Secret holding the token that signs calls. Rotating the token
	// changes status.webhookPath too.
	// +required
	SecretRef ReceiverSecretReference `json:"secretRef"`

	// signature says how a call proves it knows the token.
	// +optional
	// +kubebuilder:default={}
	Signature ReceiverSignature `json:"signature,omitempty"`

	// user says which users of the policy a call asks to cycle: the one whose email or name
	// is found in the body, or all of them.
	// +required
	User ReceiverUsers `json:"user"`

	// limits bound the calls' rate and size.
	// +optional
	// +kubebuilder:default={}
	Limits ReceiverLimits `json:"limits,omitempty"`

	// suspend answers calls with 503 and requests no cycles.
	// +optional
	// +kubebuilder:default=false
	Suspend bool `json:"suspend,omitempty"`
}

// SyncReceiverStatus is what the operator observed of a receiver.
type SyncReceiverStatus struct {
	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, and Stalled while true.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// webhookPath is where the operator's webhook port serves this receiver:
	// "/hook/" and the SHA-256 of the token, the namespace and the name. It cannot be guessed
	// without the token, and changes when the token does.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	WebhookPath string `json:"webhookPath,omitempty"`
}

// SyncReceiver reasons.
const (
	// SyncReceiverReadyReason: the receiver serves calls at status.webhookPath.
	SyncReceiverReadyReason = "ReceiverReady"

	// SyncReceiverSecretNotFoundReason: the token's Secret does not exist or lacks the key.
	SyncReceiverSecretNotFoundReason = "SecretNotFound"

	// SyncReceiverSecretNotAllowedReason: the token's Secret has not opted in to chainsync
	// (CredentialsLabel), so it is never read.
	SyncReceiverSecretNotAllowedReason = "SecretNotAllowed"

	// SyncReceiverPolicyNotFoundReason: policyRef names no SyncPolicy.
	SyncReceiverPolicyNotFoundReason = "PolicyNotFound"
)

// SyncReceiver is a webhook: a service that changed something calls it, and the users the call
// names get a cycle now instead of at their next scheduled one. The operator serves it on its
// webhook port at status.webhookPath.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=receiver,categories=chainsync
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Path",type=string,JSONPath=`.status.webhookPath`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SyncReceiver struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the receiver.
	// +required
	Spec SyncReceiverSpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status SyncReceiverStatus `json:"status,omitempty"`
}

// SyncReceiverList is a list of SyncReceiver.
// +kubebuilder:object:root=true
type SyncReceiverList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SyncReceiver `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SyncReceiver{}, &SyncReceiverList{})
}
