using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Nethereum.Util;
using PbsMarket.Core;
using PbsMarket.L1;
using FreePort = PbsMarket.LocalServers.FreePort;
using Posix = PbsMarket.LocalServers.Posix;
using Tools = PbsMarket.LocalServers.Tools;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Bench;

/// <summary>
/// Honest bids with and without a flood (issue 13): the relay runs as its own process (`pbs relay`), pinned to one
/// core with Redis, PostgreSQL, anvil and this process (the honest load); the attacker is another process pinned to
/// the other core, so what the honest figures lose is what the relay's defences cost, not CPU taken by the attacker.
///   dotnet run -c Release --project bench/PbsMarket.Relay.Bench -- --flood [--rate 0 (= half the saturating rate)]
///     [--attack-rate 1000] [--mix "4,3,3;10,0,0"] [--addresses 248] [--slow 64] [--rounds 1] [--phase-seconds 8] [--builders 32] [--slot-ms 12000]
/// (--mix: tenths of unfunded bids, data-API edges, garbage[, unfunded bids from reused keys]; each mix gets its own
/// no-flood/flood pair. Results and how to read them: docs/benchmarks.md, "Defences against hostile parties".)
/// </summary>
static class FloodBench
{
    const string PinnedVariable = "PBS_FLOOD_PINNED";
    const int RelayCore = 0, AttackerCore = 1;

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            // Re-run pinned to the relay's core, so that the servers started below inherit that core too
            // (and the runtime sizes its GC and thread pool for one core, as a pinned relay host would).
            if (Environment.GetEnvironmentVariable(PinnedVariable) != "1") return await RunPinnedCopyAsync(args);
            return await RunPinnedAsync(args);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"flood benchmark FAILED: {e.GetType().Name}: {e.Message}");
            return 1;
        }
    }

    static async Task<int> RunPinnedCopyAsync(string[] args)
    {
        if (Tools.Find("taskset") is null) throw new InvalidOperationException("taskset is missing (Debian: apt-get install util-linux)");
        if (Environment.ProcessorCount < 2) throw new InvalidOperationException($"the flood benchmark needs 2 cores (one for the attacker); this process may use {Environment.ProcessorCount}");
        var psi = new ProcessStartInfo("taskset") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(RelayCore.ToString(CultureInfo.InvariantCulture));
        foreach (var a in SelfCommand().Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment[PinnedVariable] = "1";
        using var child = Process.Start(psi) ?? throw new InvalidOperationException("could not start the pinned copy");
        Reaper.RegisterProcess(child.Id);
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(30));
        try
        {
            await child.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            throw new TimeoutException("the pinned benchmark ran over 30 minutes; killed");
        }
        return child.ExitCode;
    }

    static async Task<int> RunPinnedAsync(string[] args)
    {
        var builders = Args.Int(args, "--builders", 32);
        var slotMs = Args.Int(args, "--slot-ms", 12_000);
        var phaseSeconds = Args.Int(args, "--phase-seconds", 8);
        var rateArg = Args.Int(args, "--rate", 0);
        var attackRate = Args.Int(args, "--attack-rate", 1000);
        var addresses = Args.Int(args, "--addresses", 248);
        var slow = Args.Int(args, "--slow", 64);
        var rounds = Args.Int(args, "--rounds", 1);
        // Several mixes (";"-separated) run one after another, each as its own no-flood/flood pair.
        var mixes = (Args.String(args, "--mix") ?? Attacker.DefaultMix).Split(';', StringSplitOptions.RemoveEmptyEntries);
        foreach (var m in mixes) Attacker.ParseMix(m);
        var plan = Enumerable.Range(0, rounds).SelectMany(_ => mixes).ToArray();
        var concurrency = Args.Int(args, "--concurrency", 64);
        if (phaseSeconds * 1000 + 1500 > slotMs - 250) throw new ArgumentException($"--phase-seconds {phaseSeconds} does not fit in one auction of a {slotMs} ms slot");
        var cli = Args.String(args, "--cli") ?? CliDll();
        if (!File.Exists(cli)) throw new FileNotFoundException($"the relay's CLI is not built at {cli}: dotnet build -c Release bench/PbsMarket.Relay.Bench (it builds src/PbsMarket.Cli), or give --cli PATH");

        // Every wait below has its own bound; this one ends the run if something hangs anyway (the reaper then stops
        // the servers, the relay and the attacker).
        var overall = TimeSpan.FromMinutes(6 + 2 * plan.Length);
        _ = Task.Delay(overall).ContinueWith(_ =>
        {
            Console.Error.WriteLine($"flood benchmark FAILED: still running after {overall.TotalMinutes} minutes");
            Environment.Exit(3);
        }, TaskScheduler.Default);

        Say($"flood benchmark: {builders} builders, {phaseSeconds} s phases in {slotMs} ms slots, attacker {attackRate} requests/s from {addresses} addresses + {slow} slow bodies, mixes (unfunded,data,garbage tenths) {string.Join(" then ", plan)}");
        Say($"this process may use {Environment.ProcessorCount} core(s) (cpus {Cpus(Environment.ProcessId)}); load average {LoadAverage()}");

        await using var servers = new TestServers();
        var sw = Stopwatch.StartNew();
        var anvil = await servers.StartOwnAsync(new AnvilNode(blockTimeSeconds: 1, accounts: Math.Max(20, builders + 10)));
        var redis = await servers.RedisAsync();
        var pg = await servers.PostgresAsync();
        var pgConn = await pg.CreateDatabaseAsync("flood");
        Say($"servers up in {sw.Elapsed.TotalSeconds:0.0} s: redis pid {redis.Pid} (cpus {Cpus(redis.Pid)}), postgres pid {pg.Pid} (cpus {Cpus(pg.Pid)}), anvil pid {anvil.Pid} (cpus {Cpus(anvil.Pid)})");

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var genesis = now - now % slotMs - 2L * slotMs;
        var deployment = await Deployer.DeployAsync(anvil.RpcUrl, AnvilNode.DevKeys[0], new DeployParameters(
            TestMarket.L2ChainId, genesis, slotMs, 32, GenesisProposers: [.. TestMarket.Proposers.Select(p => p.Address)], ReservePrice: 1));
        var relayKey = AnvilNode.DevKeys[9];
        await Deployer.RegisterRelayAsync(anvil.RpcUrl, deployment, relayKey);
        var builderHex = Enumerable.Range(0, builders).Select(_ => "0x" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))).ToArray();
        var builderKeys = builderHex.Select(ProtocolKey.FromHex).ToArray();
        foreach (var k in builderKeys)
            await anvil.RpcAsync("anvil_setBalance", [k.Address.ToString(), "0x56bc75e2d63100000"]); // 100 ETH
        await Task.WhenAll(builderHex.Select(k => Deployer.DepositAsync(anvil.RpcUrl, deployment, k, UnitConversion.Convert.ToWei(10), ProtocolKey.FromHex(relayKey).Address)));
        Say($"contracts deployed, relay registered, {builders} builders funded in {sw.Elapsed.TotalSeconds:0.0} s");

        var dir = Reaper.NewTempDir("flood");
        var port = FreePort.Next();
        var relayUrl = $"http://127.0.0.1:{port}";
        var config = new Dictionary<string, object>
        {
            ["Relay"] = new Dictionary<string, string>
            {
                ["Redis"] = redis.ConnectionString,
                ["Postgres"] = pgConn,
                ["L1Rpc"] = anvil.RpcUrl,
                ["Network"] = "flood",
                ["L1ChainId"] = deployment.L1ChainId.ToString(CultureInfo.InvariantCulture),
                ["L2ChainId"] = TestMarket.L2ChainId.ToString(CultureInfo.InvariantCulture),
                ["Inbox"] = deployment.Inbox,
                ["Registry"] = deployment.Registry,
                ["Escrow"] = deployment.Escrow,
                ["GenesisMs"] = deployment.GenesisMs.ToString(CultureInfo.InvariantCulture),
                ["SlotMs"] = slotMs.ToString(CultureInfo.InvariantCulture),
                ["SlotsPerEpoch"] = "32",
                ["CloseOffsetMs"] = "250",
                ["ReservePrice"] = "1",
                // The honest builders send a few hundred bids each per auction; every other limit stays at its default.
                ["MaxBidsPerBuilderPerSlot"] = "100000",
                ["InstanceId"] = "flood-relay",
            },
            ["Logging"] = new Dictionary<string, object> { ["LogLevel"] = new Dictionary<string, string> { ["Default"] = "Warning" } },
        };
        var configPath = Path.Combine(dir, "relay.json");
        await File.WriteAllTextAsync(configPath, JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        var relayLog = Path.Combine(dir, "relay.log");
        using var relay = StartPinned(RelayCore, [DotnetHost(), cli, "relay", "--config", configPath, "--urls", relayUrl], relayLog,
            new() { ["PBS_Relay__SigningKey"] = relayKey }, stdin: false);
        try
        {
            await WaitReadyAsync(relayUrl, relay, relayLog);
            Say($"relay up at {relayUrl}: pid {relay.Id} (cpus {Cpus(relay.Id)}), log {relayLog}");

            var clock = new SlotClock(TimeProvider.System, (ulong)genesis, (ulong)slotMs, 250);
            var domain = Eip712Domain.PbsMarket(deployment.L1ChainId, Address.Parse(deployment.Inbox));
            var market = new TestMarket { Anvil = anvil, Redis = redis, Postgres = pg, PostgresConnection = pgConn, Deployment = deployment, Network = "flood" };
            var watched = new Dictionary<string, (int Pid, bool Tree)>
            {
                ["relay"] = (relay.Id, false), ["redis"] = (redis.Pid!.Value, false), ["postgres"] = (pg.Pid!.Value, true),
                ["anvil"] = (anvil.Pid!.Value, false), ["load"] = (Environment.ProcessId, false),
            };
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
            {
                BaseAddress = new Uri(relayUrl),
                Timeout = TimeSpan.FromSeconds(10),
            };
            var phase = new PhaseRunner(http, clock, domain, market, builderKeys, phaseSeconds, watched);

            // 1. The saturating rate: as fast as 64 connections get answers (closed loop), no attacker.
            var saturation = await phase.RunAsync("saturation", rate: null, attacker: null);
            await Task.Delay(slotMs); // a quiet slot: the saturation slot's close (thousands of bids) is not the baseline's
            var rate = rateArg > 0 ? rateArg : Math.Max(50, (int)(saturation.AcceptedPerSecond / 2 / 50) * 50);
            Say($"honest offered rate: {rate} bids/s ({(rateArg > 0 ? "--rate" : "half the saturating rate, rounded down to 50")})");

            // 2. Alternating phases at that rate: without the flood, then with it.
            var results = new List<PhaseResult> { saturation };
            var attackReports = new List<string>();
            for (var round = 1; round <= plan.Length; round++)
            {
                var mix = plan[round - 1];
                results.Add(await phase.RunAsync($"no flood #{round}", rate, attacker: null));
                var reportPath = Path.Combine(dir, $"attacker-{round}.json");
                var attackerLog = Path.Combine(dir, $"attacker-{round}.log");
                using var attacker = StartPinned(AttackerCore, [.. SelfCommand(), "--attacker", "--relay", relayUrl, "--rate", attackRate.ToString(CultureInfo.InvariantCulture),
                    "--addresses", addresses.ToString(CultureInfo.InvariantCulture), "--slow", slow.ToString(CultureInfo.InvariantCulture), "--mix", mix, "--out", reportPath],
                    attackerLog, new() { [PinnedVariable] = "1" }, stdin: true);
                await WaitForLineAsync(attackerLog, "attacker: flooding", attacker, TimeSpan.FromSeconds(60));
                Say($"attacker up: pid {attacker.Id} (cpus {Cpus(attacker.Id)})");
                watched["attacker"] = (attacker.Id, false);
                try
                {
                    results.Add(await phase.RunAsync($"flood #{round} ({mix})", rate, attacker));
                }
                finally
                {
                    watched.Remove("attacker");
                    attacker.StandardInput.Close(); // the attacker's stop signal
                    using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    try { await attacker.WaitForExitAsync(wait.Token); }
                    catch (OperationCanceledException) { attacker.Kill(); Say("attacker did not stop within 30 s: killed"); }
                }
                if (attacker.ExitCode != 0) throw new InvalidOperationException($"the attacker exited with {attacker.ExitCode}: {Tail(attackerLog)}");
                attackReports.Add(await File.ReadAllTextAsync(reportPath));
                Say(Tail(attackerLog, 1));
                // One quiet slot, so that what the flood left queued is not counted against the next baseline.
                await Task.Delay(slotMs);
            }

            // 3. Every accepted bid must be in its closed slot's bid_count.
            var mismatches = 0;
            foreach (var r in results)
            {
                var count = await BidCountAsync(http, clock, r.Slot);
                r.BidCount = count;
                // Every acknowledged bid must be counted. More is possible: a bid whose client gave up (10 s timeout), or that was
                // answered 503 unavailable when the relay's Redis call timed out after Redis had run it, is stored all the same.
                if (count < r.Accepted)
                {
                    mismatches++;
                    Say($"{r.Name}: slot {r.Slot} closed with bid_count {count}, fewer than the {r.Accepted} bids acknowledged");
                }
                else if (count > r.Accepted)
                {
                    var ambiguous = r.Answers.Where(a => a.Key.StartsWith("error", StringComparison.Ordinal) || a.Key == "503 unavailable").Sum(a => a.Value);
                    Say($"{r.Name}: slot {r.Slot} closed with bid_count {count}: {count - r.Accepted} bids more than acknowledged (of {ambiguous} that timed out at the client or were answered 503 unavailable)");
                }
            }
            Print(results, attackReports, rate, attackRate, addresses, slow, concurrency, builders);
            if (mismatches > 0)
            {
                Console.Error.WriteLine($"flood benchmark FAILED: {mismatches} phase(s) where bid_count is not the number of bids accepted");
                return 1;
            }
            return 0;
        }
        finally
        {
            Posix.Signal(relay.Id, Posix.SIGTERM);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try { await relay.WaitForExitAsync(wait.Token); Say($"relay stopped (SIGTERM), exit code {relay.ExitCode}"); }
            catch (OperationCanceledException) { relay.Kill(); Say("relay did not stop within 20 s of SIGTERM: killed"); }
        }
    }

    static void Print(List<PhaseResult> results, List<string> attackReports, int rate, int attackRate, int addresses, int slow, int concurrency, int builders)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine($"honest load: {builders} funded builders, {concurrency} connections from 127.0.0.1, {rate} bids/s offered (open loop; saturation: closed loop)");
        Console.WriteLine($"attacker: {attackRate} requests/s from {addresses} addresses, mix (u,d,g[,r]) = tenths of unfunded signed bids from fresh keys, data-API cursor/limit edges, garbage bodies[, unfunded bids from 248 reused keys]; + {slow} slow-body connections");
        Console.WriteLine();
        Console.WriteLine("| phase | slot | offered/s | sent | accepted | accepted/s | p50 ms | p99 ms | max ms | bid_count | other answers | CPU % of a core: relay, redis, pg, anvil, load, attacker |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var r in results)
        {
            var others = string.Join(", ", r.Answers.Where(a => a.Key != "202").OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Value} x {a.Key}"));
            var cpu = string.Join(", ", new[] { "relay", "redis", "postgres", "anvil", "load", "attacker" }.Select(k => r.Cpu.TryGetValue(k, out var v) ? v.ToString("0", c) : "-"));
            Console.WriteLine(string.Create(c, $"| {r.Name} | {r.Slot} | {(r.Offered is { } o ? o.ToString("N0", c) : "max")} | {r.Sent:N0} | {r.Accepted:N0} | {r.AcceptedPerSecond:N0} | {r.P50:0.0} | {r.P99:0.0} | {r.Max:0.0} | {r.BidCount:N0} | {(others.Length == 0 ? "none" : others)} | {cpu} |"));
        }
        Console.WriteLine();
        var quiet = results.Where(r => r.Name.StartsWith("no flood", StringComparison.Ordinal)).ToList();
        var loud = results.Where(r => r.Name.StartsWith("flood", StringComparison.Ordinal)).ToList();
        var ok = true;
        for (var i = 0; i < loud.Count; i++)
        {
            var tput = loud[i].AcceptedPerSecond / quiet[i].AcceptedPerSecond;
            var p99 = loud[i].P99 / quiet[i].P99;
            var within = tput >= 0.8 && p99 <= 1.2;
            ok &= within;
            Console.WriteLine(string.Create(c, $"round {i + 1}: flood/no-flood throughput {tput:0.00}, p99 {p99:0.00} (p50 {loud[i].P50 / quiet[i].P50:0.00}): {(within ? "within" : "NOT within")} 20%"));
        }
        Console.WriteLine($"verdict: honest figures under the flood {(ok ? "stay" : "do NOT stay")} within 20% of the figures without it");
        for (var i = 0; i < attackReports.Count; i++)
        {
            Console.WriteLine();
            Console.WriteLine($"attacker round {i + 1} (mix {MixOf(attackReports[i])}) answers:");
            using var doc = JsonDocument.Parse(attackReports[i]);
            var e = doc.RootElement;
            Console.WriteLine(string.Create(c, $"  {e.GetProperty("sent").GetInt64():N0} requests in {e.GetProperty("seconds").GetDouble():0.0} s ({e.GetProperty("sent").GetInt64() / e.GetProperty("seconds").GetDouble():N0}/s), {e.GetProperty("skipped").GetInt64()} skipped (over 4,096 in flight)"));
            var bytes = e.GetProperty("bytes");
            foreach (var a in e.GetProperty("answers").EnumerateObject())
            {
                var size = bytes.TryGetProperty(a.Name, out var b) ? b.GetInt64() : 0;
                Console.WriteLine(string.Create(c, $"  {a.Value.GetInt64(),8:N0}  {a.Name}  ({(size / (double)Math.Max(1, a.Value.GetInt64())):N0} B each)"));
            }
        }
    }

    static string MixOf(string report)
    {
        using var doc = JsonDocument.Parse(report);
        return doc.RootElement.GetProperty("mix").GetString() ?? "";
    }

    static async Task<long> BidCountAsync(HttpClient http, SlotClock clock, ulong slot)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (clock.NowMs > clock.AuctionClosesMs(slot) + 500)
            {
                using var r = await http.GetAsync($"relay/v1/data/slots/{slot}");
                last = await r.Content.ReadAsStringAsync();
                if (r.IsSuccessStatusCode)
                {
                    using var doc = JsonDocument.Parse(last);
                    if (doc.RootElement.TryGetProperty("bid_count", out var bc) && bc.GetString() is { } s) return long.Parse(s, CultureInfo.InvariantCulture);
                }
            }
            await Task.Delay(250);
        }
        throw new TimeoutException($"slot {slot} has no bid_count 30 s after its close: {last}");
    }

    /// <summary>One honest phase in one auction: pre-signed distinct bids from the funded builders.</summary>
    sealed class PhaseRunner(HttpClient http, SlotClock clock, Eip712Domain domain, TestMarket market, ProtocolKey[] builders, int seconds,
        Dictionary<string, (int Pid, bool Tree)> watched)
    {
        const int SaturationBidsPerSecond = 4000;

        public async Task<PhaseResult> RunAsync(string name, int? rate, Process? attacker)
        {
            // The first auction that opens after signing (and, with an attacker, after its flood has been on for a second or two).
            var slot = clock.SlotAt(clock.NowMs + 3_000) + 2;
            var count = (rate ?? SaturationBidsPerSecond) * seconds;
            var proposer = market.ProposerOf(slot).Address;
            var bodies = new byte[count][];
            for (var i = 0; i < count; i++)
            {
                var key = builders[i % builders.Length];
                var header = new Header(TestMarket.L2ChainId, slot, 1, Hash32.Zero, clock.StartMs(slot), 30_000_000, 0, Keccak.Hash(PayloadCodec.Empty),
                    key.Address, proposer, 1_000 + i);
                bodies[i] = Wire.ToUtf8(new BidSubmission(header, key.Sign(Eip712.Digest(domain, header)), PayloadCodec.Empty), Wire.WriteBidSubmission);
            }
            var opens = (long)clock.AuctionOpensMs(slot) + 300;
            var wait = opens - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            if (wait < 0) throw new InvalidOperationException($"{name}: signing {count} bids ran past the opening of slot {slot}");
            Say($"{name}: {count} bids pre-signed for slot {slot}; sending {(rate is { } r ? $"{r} bids/s" : "as fast as answered")} for {seconds} s from {wait / 1000.0:0.0} s from now");
            await Task.Delay(TimeSpan.FromMilliseconds(wait));
            // The relay opens the auction in Redis a moment after the clock does (longer on a loaded core): start when it has,
            // so that no phase counts its own start-up as refusals. Bounded: after 2.5 s it starts anyway.
            var openWait = Stopwatch.StartNew();
            while (openWait.Elapsed < TimeSpan.FromSeconds(2.5) && !await IsOpenAsync(slot)) await Task.Delay(50);
            if (openWait.ElapsedMilliseconds > 100) Say($"{name}: the relay opened slot {slot}'s auction {openWait.ElapsedMilliseconds} ms after the clock (+300 ms)");
            if (attacker is { HasExited: true }) throw new InvalidOperationException($"{name}: the attacker exited early ({attacker.ExitCode})");

            var latencies = new ConcurrentBag<double>();
            var answers = new ConcurrentDictionary<string, int>();
            var cpuBefore = watched.ToDictionary(w => w.Key, w => CpuSeconds(w.Value.Pid, w.Value.Tree));
            var wall = Stopwatch.StartNew();
            var limit = TimeSpan.FromSeconds(seconds);
            if (rate is { } perSecond)
            {
                // Open loop: bid i goes out at i / rate seconds whether or not earlier ones were answered.
                var tasks = new List<Task>(count);
                var sent = 0;
                while (sent < count && wall.Elapsed < limit)
                {
                    var due = Math.Min(count, (int)(wall.Elapsed.TotalSeconds * perSecond) + 1);
                    while (sent < due) tasks.Add(SendAsync(bodies[sent++], latencies, answers));
                    await Task.Delay(1);
                }
                var all = Task.WhenAll(tasks);
                if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(15))) != all)
                    throw new TimeoutException($"{name}: bids still unanswered 15 s after the last was sent");
            }
            else
            {
                var next = -1;
                await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
                {
                    int i;
                    while (wall.Elapsed < limit && (i = Interlocked.Increment(ref next)) < count) await SendAsync(bodies[i], latencies, answers);
                }));
            }
            wall.Stop();
            var cpu = watched.ToDictionary(w => w.Key, w => (CpuSeconds(w.Value.Pid, w.Value.Tree) - cpuBefore[w.Key]) / wall.Elapsed.TotalSeconds * 100);
            var sorted = latencies.Order().ToArray();
            double P(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
            var accepted = answers.GetValueOrDefault("202");
            var result = new PhaseResult(name, slot, rate, sorted.Length, accepted, accepted / wall.Elapsed.TotalSeconds, P(0.5), P(0.99),
                sorted.Length == 0 ? double.NaN : sorted[^1], answers.ToDictionary(), cpu);
            Say(string.Create(CultureInfo.InvariantCulture, $"{name}: {result.Sent} sent, {accepted} accepted in {wall.Elapsed.TotalSeconds:0.00} s = {result.AcceptedPerSecond:N0}/s, p50 {result.P50:0.0} ms, p99 {result.P99:0.0} ms; relay CPU {cpu["relay"]:0}% of a core; load average {LoadAverage()}"));
            return result;
        }

        async Task<bool> IsOpenAsync(ulong slot)
        {
            try
            {
                using var r = await http.GetAsync("relay/v1/builder/auction");
                if (!r.IsSuccessStatusCode) return false;
                using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
                return doc.RootElement.GetProperty("slot").GetString() == slot.ToString(CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }

        async Task SendAsync(byte[] body, ConcurrentBag<double> latencies, ConcurrentDictionary<string, int> answers)
        {
            var t = Stopwatch.GetTimestamp();
            string key;
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await http.PostAsync("relay/v1/builder/bids", content);
                var text = await response.Content.ReadAsStringAsync();
                key = response.StatusCode == HttpStatusCode.Accepted ? "202" : $"{(int)response.StatusCode} {CodeOf(text)}";
            }
            catch (Exception e)
            {
                key = $"error {e.GetType().Name}";
            }
            latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            answers.AddOrUpdate(key, 1, (_, n) => n + 1);
        }

        static string CodeOf(string problem)
        {
            try
            {
                using var doc = JsonDocument.Parse(problem);
                return doc.RootElement.TryGetProperty("code", out var c) ? c.GetString() ?? "" : "";
            }
            catch (JsonException)
            {
                return "";
            }
        }
    }

    sealed record PhaseResult(string Name, ulong Slot, int? Offered, int Sent, int Accepted, double AcceptedPerSecond, double P50, double P99, double Max,
        Dictionary<string, int> Answers, Dictionary<string, double> Cpu)
    {
        public long BidCount { get; set; } = -1;
    }

    /// <summary>Starts <paramref name="command"/> pinned to <paramref name="core"/>, output to <paramref name="log"/>; exec keeps the pid.</summary>
    static Process StartPinned(int core, string[] command, string log, Dictionary<string, string> env, bool stdin)
    {
        var psi = new ProcessStartInfo("/bin/bash") { UseShellExecute = false, RedirectStandardInput = stdin };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec taskset -c \"$0\" \"$@\" >\"$PBS_FLOOD_LOG\" 2>&1");
        psi.ArgumentList.Add(core.ToString(CultureInfo.InvariantCulture));
        foreach (var a in command) psi.ArgumentList.Add(a);
        psi.Environment["PBS_FLOOD_LOG"] = log;
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {command[0]}");
        Reaper.RegisterProcess(p.Id);
        return p;
    }

    static async Task WaitReadyAsync(string url, Process relay, string log)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (relay.HasExited) throw new InvalidOperationException($"the relay exited with {relay.ExitCode}: {Tail(log)}");
            try
            {
                using var r = await http.GetAsync($"{url}/readyz");
                if (r.IsSuccessStatusCode) return;
                last = await r.Content.ReadAsStringAsync();
            }
            catch (HttpRequestException e) { last = e.Message; }
            catch (TaskCanceledException) { last = "readyz timed out"; }
            await Task.Delay(250);
        }
        throw new TimeoutException($"the relay was not ready within 60 s: {last}; log: {Tail(log)}");
    }

    static async Task WaitForLineAsync(string log, string line, Process p, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(log) && (await File.ReadAllTextAsync(log)).Contains(line, StringComparison.Ordinal)) return;
            if (p.HasExited) throw new InvalidOperationException($"exited with {p.ExitCode} before '{line}': {Tail(log)}");
            await Task.Delay(100);
        }
        throw new TimeoutException($"no '{line}' within {timeout.TotalSeconds} s: {Tail(log)}");
    }

    static string Tail(string log, int lines = 15) =>
        File.Exists(log) ? string.Join(Environment.NewLine, File.ReadLines(log).TakeLast(lines)) : "(no log)";

    /// <summary>How to run this bench binary again (as `dotnet x.dll` or its apphost).</summary>
    static string[] SelfCommand()
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        return Path.GetFileNameWithoutExtension(path) == "dotnet" ? [path, Assembly.GetEntryAssembly()!.Location] : [path];
    }

    static string DotnetHost()
    {
        var host = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return File.Exists(host) ? host : "dotnet";
    }

    /// <summary>src/PbsMarket.Cli's build output in this bench's configuration (the bench's project builds it).</summary>
    static string CliDll()
    {
        var configuration = typeof(FloodBench).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        var root = Tools.RepoRoot ?? throw new InvalidOperationException("run from inside the repository (no PbsMarket.sln found)");
        return Path.Combine(root, "src", "PbsMarket.Cli", "bin", configuration, "net10.0", "pbs.dll");
    }

    /// <summary>User + system CPU seconds of a process (and, for PostgreSQL, of its backends), from /proc.</summary>
    static double CpuSeconds(int pid, bool tree)
    {
        double Ticks(int p)
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{p}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                return double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (IOException) { return 0; }
        }
        var total = Ticks(pid);
        if (tree)
        {
            foreach (var d in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(d), out var child)) continue;
                try
                {
                    var stat = File.ReadAllText(Path.Combine(d, "stat"));
                    var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
                    if (ppid == pid) total += Ticks(child);
                }
                catch (IOException) { }
            }
        }
        return total / 100.0; // USER_HZ
    }

    static string Cpus(int? pid)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))?.Split(':')[1].Trim() ?? "?";
        }
        catch (IOException) { return "?"; }
    }

    static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    static void Say(string line) => Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {line}");
}
