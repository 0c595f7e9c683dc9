using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Nethereum.Util;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

// Drives one relay over loopback HTTP with pre-signed bids from many builders during one open
// auction, and measures the raw signature-recovery rate of the same machine in the same run.
//   dotnet run -c Release --project bench/PbsMarket.Relay.Bench -- [--builders 32] [--bids 40000] [--concurrency 64] [--slot-ms 12000] [--redis-cluster]
// --redis-cluster keeps the relay's state on a Redis Cluster (3 masters, 1 replica each) and prints each master's commands.
// --wait-replicas N turns the durability promise on (Relay:Durability:WaitReplicas; with one Redis, a replica is started);
// --aof everysec|always gives the single Redis an append-only file.
// --simulate N runs an L2 engine and the L2 node, and the relay simulates every bid's block (N signed transfers, 0 = the
// empty block) before accepting it (docs/l2.md); afterwards it also times pbs_simulateBlock alone, one call at a time.
// The relay keeps each block's verdict, so by default most bids (the same block at other values) are not simulated
// again; --distinct-blocks gives every bid a block of its own (the first transfer's value differs), the worst case.
// --optimistic turns on optimistic simulation (Relay:Simulation): bids are answered before their blocks are simulated,
// the leading ones are simulated during the auction and the winner at the latest at the close.
// With --flood it measures honest bids with and without an attacker instead (FloodBench.cs); --attacker is that
// attacker's own process (Attacker.cs).
if (args.Contains("--attacker")) return await PbsMarket.Relay.Bench.Attacker.RunAsync(args);
if (args.Contains("--flood")) return await PbsMarket.Relay.Bench.FloodBench.RunAsync(args);
var builders = Arg("--builders", 32);
var totalBids = Arg("--bids", 40_000);
var concurrency = Arg("--concurrency", 64);
var slotMs = Arg("--slot-ms", 12_000);
Console.WriteLine($"relay benchmark: {builders} builders, {totalBids} pre-signed bids, {concurrency} concurrent connections, {slotMs} ms slots, {Environment.ProcessorCount} cores, redis {(args.Contains("--redis-cluster") ? "cluster (3 masters, 1 replica each)" : "one server")}, wait for {Arg("--wait-replicas", 0)} replica(s) before 202, append-only file {(args.Contains("--aof") ? args[Array.IndexOf(args, "--aof") + 1] : "off")}");

await using var servers = new TestServers();
var sw = Stopwatch.StartNew();
var anvil = await servers.StartOwnAsync(new AnvilNode(blockTimeSeconds: 1, accounts: Math.Max(20, builders + 10)));
var waitReplicas = Arg("--wait-replicas", 0);
var aofIndex = Array.IndexOf(args, "--aof");
var aof = aofIndex >= 0 && aofIndex + 1 < args.Length ? args[aofIndex + 1] : null;
var cluster = args.Contains("--redis-cluster") ? await servers.StartOwnClusterAsync() : null;
var redis = cluster is null && (aof is not null || waitReplicas > 0) ? await servers.StartOwnAsync(new RedisServer(appendFsync: aof)) : await servers.RedisAsync();
if (cluster is null && waitReplicas > 0)
{
    var replica = await servers.StartOwnAsync(new RedisServer(replicaOf: redis.Port));
    var sync = Stopwatch.StartNew();
    using var probe = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
    while (!((string?)await probe.GetServer(redis.Endpoint).ExecuteAsync("INFO", "replication"))!.Contains("connected_slaves:1", StringComparison.Ordinal))
    {
        if (sync.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"the replica on port {replica.Port} did not connect");
        await Task.Delay(100);
    }
}
var simulateTxs = args.Contains("--simulate") ? Arg("--simulate", 0) : -1;
var optimistic = args.Contains("--optimistic");
var l2engine = simulateTxs >= 0 ? await servers.StartOwnAsync(new L2EngineNode()) : null;
var pg = await servers.PostgresAsync();
var pgConn = await pg.CreateDatabaseAsync("bench");
Console.WriteLine($"servers up in {sw.Elapsed.TotalSeconds:0.0} s");

var proposers = TestMarket.Proposers;
var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
var genesis = now - now % slotMs - 2L * slotMs;
var deployment = await Deployer.DeployAsync(anvil.RpcUrl, AnvilNode.DevKeys[0], new DeployParameters(
    TestMarket.L2ChainId, genesis, slotMs, 32, GenesisProposers: [.. proposers.Select(p => p.Address)], ReservePrice: 1));
// The relay key is a registered, bonded relay on L1 (the relay's readiness checks it: L1 would refuse its results otherwise).
await Deployer.RegisterRelayAsync(anvil.RpcUrl, deployment, AnvilNode.DevKeys[9]);
// Builders: fresh keys funded from a dev account, each with escrow collateral.
var builderHex = Enumerable.Range(0, builders).Select(_ => "0x" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))).ToArray();
var builderKeys = builderHex.Select(ProtocolKey.FromHex).ToArray();
await FundBuildersAsync(anvil, deployment, builderHex);
Console.WriteLine($"contracts deployed and {builders} builders funded in {sw.Elapsed.TotalSeconds:0.0} s");
PbsMarket.L2.L2Node? l2node = null;
if (l2engine is not null)
{
    l2node = PbsMarket.L2.L2Node.Build(new PbsMarket.L2.L2NodeOptions { L1Rpc = anvil.RpcUrl, EngineRpc = l2engine.RpcUrl }, deployment,
        b => b.Configuration["Logging:LogLevel:Default"] = "Warning");
    await l2node.StartAsync();
    while (!(await new HttpClient().GetAsync($"{l2node.RpcUrl}/readyz")).IsSuccessStatusCode) await Task.Delay(100);
    Console.WriteLine(optimistic
        ? $"L2 engine and L2 node up; optimistic simulation: bids ({simulateTxs} transfer(s) each) are answered before their blocks are simulated"
        : $"L2 engine and L2 node up; every bid's block ({simulateTxs} transfer(s)) is simulated before it is accepted");
}
// The block every bid offers: empty, or (with --simulate N) N transfers from N funded L2 genesis accounts.
var distinct = args.Contains("--distinct-blocks") && simulateTxs > 0;
var commonTxs = Enumerable.Range(0, Math.Max(simulateTxs, 0)).Select(i => BenchTx.Transfer(AnvilNode.DevKeys[10 + i % 10], (ulong)(i / 10), AnvilNode.DevKeys[i % 10], 1)).ToArray();
byte[] PayloadFor(int bid) => simulateTxs <= 0 ? PayloadCodec.Empty
    : PayloadCodec.Encode(commonTxs.Select((t, i) => i == 0 && distinct ? BenchTx.Transfer(AnvilNode.DevKeys[10], 0, AnvilNode.DevKeys[0], 1 + bid) : t));
var payload = PayloadFor(0);
// Distinct blocks are signed before the auction is picked (Nethereum's managed signer is slow).
var payloads = distinct ? new byte[totalBids][] : null;
if (payloads is not null) Parallel.For(0, totalBids, i => payloads[i] = PayloadFor(i));
var gasUsed = 21_000UL * (ulong)Math.Max(simulateTxs, 0);

// Raw recovery rate, one core and all cores, same machine, same run.
var digest = Keccak.Hash("bench"u8);
var sig = builderKeys[0].Sign(digest);
var rawOne = RecoveryRate(digest, sig, 1);
var rawAll = RecoveryRate(digest, sig, Environment.ProcessorCount);
Console.WriteLine($"raw recovery ({SignatureRecovery.ActiveBackend}): {rawOne:N0}/s on one core, {rawAll:N0}/s on {Environment.ProcessorCount} cores");

var market = new TestMarket { Anvil = anvil, Redis = redis, Postgres = pg, PostgresConnection = pgConn, Deployment = deployment, Network = "bench" };
var relay = await market.StartRelayAsync(c =>
{
    c["Relay:SlotMs"] = slotMs.ToString(CultureInfo.InvariantCulture);
    c["Relay:CloseOffsetMs"] = "250";
    c["Relay:MaxBidsPerBuilderPerSlot"] = "100000";
    c["Relay:ReservePrice"] = "1";
    // This mode measures throughput from one address, above the per-address and per-builder defaults (issue 13's
    // limits answered part of it 429); the flood mode measures the relay with its default limits.
    c["Relay:BidRequestsPerSecondPerAddress"] = "1000000";
    c["Relay:BidsPerSecondPerBuilder"] = "1000000";
    if (cluster is not null) c["Relay:Redis"] = cluster.ConnectionString;
    if (l2node is not null) c["Relay:L2Rpc"] = l2node.RelayRpcUrl;
    if (l2node is not null && optimistic) c["Relay:Simulation"] = "optimistic";
    c["Relay:Durability:WaitReplicas"] = waitReplicas.ToString(CultureInfo.InvariantCulture);
});

// Pre-sign every bid for the next auction to open (so signing is not measured).
var clock = new SlotClock(TimeProvider.System, (ulong)genesis, (ulong)slotMs, 250);
// The first auction that opens at least 5 s from now (signing takes a few seconds on 2 cores).
var slot = clock.SlotAt(clock.NowMs + 5_000) + 2;
var domain = market.Domain;
var proposer = market.ProposerOf(slot).Address;
var bodies = new byte[totalBids][];
Parallel.For(0, totalBids, i =>
{
    var key = builderKeys[i % builders];
    var p = payloads?[i] ?? payload;
    var header = new Header(TestMarket.L2ChainId, slot, 1, Hash32.Zero, clock.StartMs(slot), 30_000_000, gasUsed, Keccak.Hash(p),
        key.Address, proposer, 1_000 + i);
    bodies[i] = Wire.ToUtf8(new BidSubmission(header, key.Sign(Eip712.Digest(domain, header)), p), Wire.WriteBidSubmission);
});
Console.WriteLine($"{totalBids} bids pre-signed for slot {slot}");

// Wait for the auction to open, then send as fast as the relay takes them until the close.
var opens = (long)clock.AuctionOpensMs(slot);
var wait = opens - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 50;
if (wait > 0) await Task.Delay(TimeSpan.FromMilliseconds(wait));
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
{
    BaseAddress = new Uri(relay.Url),
    Timeout = TimeSpan.FromSeconds(10),
};
var closes = DateTimeOffset.FromUnixTimeMilliseconds((long)clock.AuctionClosesMs(slot) - 100);
var latencies = new ConcurrentBag<double>();
var codes = new ConcurrentDictionary<int, int>();
var next = -1;
Console.WriteLine($"auction for slot {slot} is open: sending");
var callsBefore = cluster is null ? null : await MasterCallsAsync(cluster);
var wall = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
{
    while (DateTimeOffset.UtcNow < closes)
    {
        var i = Interlocked.Increment(ref next);
        if (i >= bodies.Length) return;
        using var content = new ByteArrayContent(bodies[i]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var t = Stopwatch.GetTimestamp();
        using var response = await http.PostAsync("relay/v1/builder/bids", content);
        await response.Content.ReadAsByteArrayAsync();
        latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        codes.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
    }
}));
wall.Stop();
var accepted = codes.GetValueOrDefault((int)HttpStatusCode.Accepted);
var sorted = latencies.OrderBy(x => x).ToArray();
double P(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
var rate = accepted / wall.Elapsed.TotalSeconds;
Console.WriteLine();
Console.WriteLine($"sent {sorted.Length} bids in {wall.Elapsed.TotalSeconds:0.00} s: " + string.Join(", ", codes.OrderBy(c => c.Key).Select(c => $"{c.Value} x {c.Key}")));
Console.WriteLine($"accepted bids/s      {rate:N0}");
Console.WriteLine($"latency p50         {P(0.50):0.00} ms");
Console.WriteLine($"latency p99         {P(0.99):0.00} ms");
Console.WriteLine($"raw recovery/s      {rawOne:N0} (1 core), {rawAll:N0} ({Environment.ProcessorCount} cores)");
Console.WriteLine($"ratio               {rate / rawOne:0.00} of one core's raw rate, {rate / rawAll:0.00} of all cores'");

if (cluster is not null)
{
    var after = await MasterCallsAsync(cluster);
    Console.WriteLine($"redis cluster: commands per accepted bid on each master (scripts' inner commands counted): " +
        string.Join(", ", after.Select(m => $"{m.Key} {(m.Value - callsBefore!.GetValueOrDefault(m.Key)) / (double)Math.Max(1, accepted):0.00}")));
}

// From the close time on, the slot's proposer asks for its header every 2 ms, as `pbs proposer` does (signed
// HeaderRequest): the first 200 is when it has the header (closing included: with --optimistic, simulating whatever the
// result needs that the prefetch did not do). Then 200 more requests time the header served from a closed slot.
await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(0, (long)clock.AuctionClosesMs(slot) - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())));
var headerSignature = market.ProposerOf(slot).Sign(Eip712.Digest(domain, new HeaderRequest(slot, proposer))).ToString();
async Task<HttpStatusCode> HeaderAsync()
{
    using var request = new HttpRequestMessage(HttpMethod.Get, $"relay/v1/proposer/header/{slot.ToString(CultureInfo.InvariantCulture)}");
    request.Headers.Add("X-Pbs-Signature", headerSignature);
    using var response = await http.SendAsync(request);
    await response.Content.ReadAsByteArrayAsync();
    return response.StatusCode;
}
double resultAfterMs;
while (true)
{
    var status = await HeaderAsync();
    if (status is HttpStatusCode.OK or HttpStatusCode.NoContent)
    {
        resultAfterMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - (long)clock.AuctionClosesMs(slot);
        break;
    }
    await Task.Delay(2);
}
var served = new double[200];
var servedOther = 0;
for (var i = 0; i < served.Length; i++)
{
    await Task.Delay(6); // under the relay's 200 requests/s per address
    var t = Stopwatch.GetTimestamp();
    if (await HeaderAsync() is not (HttpStatusCode.OK or HttpStatusCode.NoContent)) servedOther++;
    served[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
}
Array.Sort(served);
if (servedOther > 0) Console.WriteLine($"{servedOther} of the {served.Length} timed header requests were not answered 200/204");
using (var doc = await relay.Client.GetJsonAsync($"relay/v1/data/slots/{slot}"))
    Console.WriteLine($"slot {slot} closed with bid_count {doc.RootElement.GetProperty("bid_count").GetString()} (accepted {accepted}); header to its proposer {resultAfterMs:0} ms after the close, winner {(doc.RootElement.GetProperty("winner").ValueKind != System.Text.Json.JsonValueKind.Object ? "none" : l2node is null ? "(not simulated)" : "simulated")}; then served in p50 {served[100]:0.00} ms, p99 {served[197]:0.00} ms");
if (l2node is not null)
{
    // The simulation alone, as the relay calls it: one call at a time on the node's relay port.
    using var sim = new PbsMarket.L2.JsonRpcClient(l2node.RelayRpcUrl, TimeSpan.FromSeconds(10));
    var one = new System.Text.Json.Nodes.JsonObject
    {
        ["parent_hash"] = Hash32.Zero.ToString(), ["timestamp_ms"] = clock.StartMs(slot + 1).ToString(CultureInfo.InvariantCulture),
        ["builder"] = builderKeys[0].Address.ToString(), ["payload"] = Hex.Encode(payload),
    };
    var times = new List<double>();
    for (var i = 0; i < 300; i++)
    {
        var t = Stopwatch.GetTimestamp();
        await sim.CallAsync("pbs_simulateBlock", [one.DeepClone()]);
        times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
    }
    times.Sort();
    Console.WriteLine($"simulation alone    p50 {times[150]:0.00} ms, p99 {times[296]:0.00} ms ({simulateTxs} transfer(s), 300 calls one at a time)");
    await l2node.DisposeAsync();
}
await relay.DisposeAsync();
await anvil.DisposeAsync();
return 0;

static async Task<Dictionary<string, long>> MasterCallsAsync(PbsMarket.Testing.RedisCluster cluster)
{
    var calls = new Dictionary<string, long>();
    foreach (var master in await cluster.MastersAsync()) calls[master.Endpoint] = await master.CommandCallsAsync();
    return calls;
}

static double RecoveryRate(Hash32 digest, Signature sig, int threads)
{
    var duration = TimeSpan.FromSeconds(2);
    long total = 0;
    var sw = Stopwatch.StartNew();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, worker =>
    {
        long n = 0;
        while (sw.Elapsed < duration)
        {
            for (var k = 0; k < 100; k++) SignatureRecovery.TryRecover(digest, sig, out _);
            n += 100;
        }
        Interlocked.Add(ref total, n);
    });
    return total / sw.Elapsed.TotalSeconds;
}

static async Task FundBuildersAsync(AnvilNode anvil, DeployedMarket deployment, string[] keys)
{
    // anvil's own cheat RPC funds the fresh builder accounts at once; deposits go in parallel.
    foreach (var k in keys)
        await anvil.RpcAsync("anvil_setBalance", [ProtocolKey.FromHex(k).Address.ToString(), "0x56bc75e2d63100000"]); // 100 ETH
    await Task.WhenAll(keys.Select(k => Deployer.DepositAsync(anvil.RpcUrl, deployment, k, UnitConversion.Convert.ToWei(10), TestMarket.RelaySigner.Address)));
}

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) ? v : fallback;
}

static class BenchTx
{
    /// <summary>An EIP-1559 transfer on the test L2 chain, tip 1 gwei.</summary>
    public static byte[] Transfer(string key, ulong nonce, string toKey, BigInteger value)
    {
        var to = new Nethereum.Signer.EthECKey(toKey).GetPublicAddress();
        var t = new Nethereum.Model.Transaction1559(TestMarket.L2ChainId, nonce, 1_000_000_000, 2_000_000_000, 21_000, to, value, "", null);
        new Nethereum.Signer.Transaction1559Signer().SignTransaction(new Nethereum.Signer.EthECKey(key), t);
        return t.GetRLPEncoded();
    }
}
