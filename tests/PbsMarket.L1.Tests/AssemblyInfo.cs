using PbsMarket.Testing;

[assembly: AssemblyFixture(typeof(TestServers))]
// The classes share one anvil and send from the same dev keys (the deployer, the relay registered on each inbox): in
// parallel, two classes' transactions from one key race for a nonce ("nonce too low", seen in a clean-clone run). The
// suite takes seconds, so its classes run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
