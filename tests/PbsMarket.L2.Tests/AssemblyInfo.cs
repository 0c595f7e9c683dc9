using PbsMarket.Testing;

[assembly: AssemblyFixture(typeof(TestServers))]
// Each class runs a market on a slot clock with its own L1 and L2 engine: one class at a time on two cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
