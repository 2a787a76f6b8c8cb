package crypto_test

import (
	"crypto/rand"
	"fmt"
	"time"

	"filippo.io/age"

	mfncrypto "github.com/mfn/mfn/crypto"
)

// A node signs and seals an update to the coordinators; a coordinator opens
// it with its age identity and the node's enrolled key.
func Example() {
	node, _ := mfncrypto.GenerateIdentity(mfncrypto.RoleNode, rand.Reader)
	coord, _ := mfncrypto.GenerateIdentity(mfncrypto.RoleCoordinator, rand.Reader)

	// Node side.
	update := mfncrypto.EncodeUpdate([]float64{0.5, -0.25, 0.125}, mfncrypto.Float32)
	stmt := &mfncrypto.Statement{
		Origin:      "mfn.example/cluster-1",
		JobID:       "job-1",
		Round:       4,
		NodeID:      node.NodeID(),
		SampleCount: 100,
		Time:        time.Now(),
		// BaseModelHash: SHA-256 of the model the update starts from.
		// UpdateHash is filled in by Seal.
	}
	sealed, err := mfncrypto.Seal(stmt, update, node.SigningKey, []age.Recipient{coord.Recipient()})
	if err != nil {
		panic(err)
	}

	// Coordinator side: enrolled node keys by id.
	enrolled := mfncrypto.NodeKeys{node.NodeID(): node.PublicKey()}
	op, err := mfncrypto.Open(sealed, []age.Identity{coord.Age}, enrolled, mfncrypto.Limits{})
	if err != nil {
		panic(err)
	}
	values, err := mfncrypto.DecodeUpdate(op.Update, 1000)
	if err != nil {
		panic(err)
	}
	fmt.Println(op.Statement.JobID, op.Statement.Round, values)

	// An auditor later checks the statement with the public key only.
	fmt.Println(mfncrypto.VerifyStatement(node.PublicKey(), op.StatementBytes, op.Signature))
	// Output:
	// job-1 4 [0.5 -0.25 0.125]
	// <nil>
}
