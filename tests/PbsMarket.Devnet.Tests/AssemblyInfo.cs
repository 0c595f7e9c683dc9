using PbsMarket.Testing;

// Real servers (Redis, PostgreSQL; anvil per market) for the tests that run `pbs relay` against a deployed market.
[assembly: AssemblyFixture(typeof(TestServers))]
