using PbsMarket.Testing;
using PbsMarket.Testing.Market;

[assembly: AssemblyFixture(typeof(TestServers))]
// Every class runs its own market on a slot clock (anvil, relay, timed auctions): on two cores, classes in
// parallel would make the machine's load, not the code, decide whether a bid meets its window. One at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
