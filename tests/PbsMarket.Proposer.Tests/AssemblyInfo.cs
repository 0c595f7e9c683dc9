using PbsMarket.Testing;

[assembly: AssemblyFixture(typeof(TestServers))]
// Slot timing on two cores: one market at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
