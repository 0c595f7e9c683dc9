using PbsMarket.Testing;

[assembly: AssemblyFixture(typeof(TestServers))]
