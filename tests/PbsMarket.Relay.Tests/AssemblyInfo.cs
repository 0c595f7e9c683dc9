using PbsMarket.Testing;
using PbsMarket.Testing.Market;

[assembly: AssemblyFixture(typeof(TestServers))]
