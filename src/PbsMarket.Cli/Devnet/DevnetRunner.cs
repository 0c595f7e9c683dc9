using PbsMarket.Relay.Infrastructure;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Nethereum.Util;
using PbsMarket.Builder.Demo;
using PbsMarket.LocalServers;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Proposer;
using PbsMarket.Relay;

namespace PbsMarket.Cli.Devnet;

public sealed class DevnetSettings
{
    public int Proposers { get; set; } = 4;
    public int Builders { get; set; } = 3;
    public int Relays { get; set; } = 2;
    public long SlotMs { get; set; } = 2000;
    public long CloseOffsetMs { get; set; } = 250;
    public long L2ChainId { get; set; } = 901;
    public int? Slots { get; set; }
    public string RuntimeDir { get; set; } = ".run/devnet";
    public bool Hold { get; set; }
    public int? Port { get; set; }
    public string PriceRule { get; set; } = "second_price";
    public string ReservePrice { get; set; } = "1000";
    public BigInteger Collateral { get; set; } = UnitConversion.Convert.ToWei(10);
    public bool Proposer { get; set; } = true;
    /// <summary>The first proposer also announces junk heads (<see cref="JunkHeads"/>).</summary>
    public bool JunkHeads { get; set; }
}

/// <summary>
/// The whole market on this machine: Redis, PostgreSQL and anvil as child processes with their files in one runtime
/// folder; the contracts deployed; relays, the proposer client and the demo builders in this process. Prints where
/// everything is and one line per slot; with <see cref="DevnetSettings.Slots"/> it stops after that many slots and
/// checks the market (every slot posted or missed with a reason, L1 events = data API, balances = prices).
/// </summary>
public sealed class DevnetRunner(DevnetSettings s, TextWriter output, TextWriter errors)
{
    const int RelayKeyIndex = 9, FunderIndex = 8;
    readonly List<ServerProcess> _servers = [];
    readonly List<WebApplication> _relays = [];
    readonly List<(DemoBuilder Builder, Task Run)> _builders = [];
    readonly List<ILoggerProvider> _logs = [];
    readonly CancellationTokenSource _builderStop = new();
    JunkHeads? _junk;
    Task? _junkRun;
    readonly CancellationTokenSource _proposerStop = new();
    ProposerClient? _proposer;
    Task? _proposerRun;
    Watchdog? _watchdog;
    string _runtime = "";
    readonly Stopwatch _uptime = Stopwatch.StartNew();

    public async Task<int> RunAsync(CancellationToken ct)
    {
        _runtime = Path.GetFullPath(s.RuntimeDir);
        try
        {
            return await RunInnerAsync(ct);
        }
        finally
        {
            await ShutdownAsync();
        }
    }

    void Say(string line) => output.WriteLine(line);

    async Task<int> RunInnerAsync(CancellationToken ct)
    {
        // ---- the runtime folder: one devnet per folder, overwritten each start ----
        var pidFile = Path.Combine(_runtime, "pbs.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var other) && other != Environment.ProcessId
            && Posix.IsAlive(other) && File.Exists($"/proc/{other}/cmdline") && File.ReadAllText($"/proc/{other}/cmdline").Contains("devnet", StringComparison.Ordinal))
            throw new UsageException($"another devnet (pid {other}) runs in {_runtime}; stop it or use --runtime-dir");
        if (Directory.Exists(_runtime))
        {
            var ended = await Watchdog.EndLeftoversAsync(_runtime);
            if (ended > 0) Say($"ended {ended} server(s) left running by a previous devnet in {_runtime}");
            Directory.Delete(_runtime, recursive: true);
        }
        Directory.CreateDirectory(_runtime);
        File.WriteAllText(pidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        _watchdog = new Watchdog(_runtime);
        _watchdog.Start();

        // ---- servers ----
        Say($"starting Redis, PostgreSQL and anvil (runtime folder {_runtime})");
        // Append-only file, fsync once a second: a restart after kill -9 keeps everything acknowledged (docs/relay.md).
        var redis = Own(new RedisServer(Path.Combine(_runtime, "redis"), appendFsync: "everysec"));
        var postgres = Own(new PostgresServer(Path.Combine(_runtime, "postgres")));
        var anvil = Own(new AnvilNode(Path.Combine(_runtime, "anvil"), blockTimeSeconds: 1));
        await Task.WhenAll(redis.StartAsync(ct), postgres.StartAsync(ct), anvil.StartAsync(ct));
        await postgres.ExecAsync("CREATE DATABASE relay", ct: ct);
        var pgConn = postgres.ConnectionString("relay");

        // ---- keys: anvil's public dev accounts (1-4 proposers, 5-7 builders, 9 relay), extra ones derived and funded ----
        var proposerKeys = Enumerable.Range(0, s.Proposers).Select(i => i < 4 ? DevKeys.Keys[1 + i] : Derived("proposer", i)).ToList();
        var builderKeys = Enumerable.Range(0, s.Builders).Select(i => i < 3 ? DevKeys.Keys[5 + i] : Derived("builder", i)).ToList();
        var relayKey = DevKeys.Keys[RelayKeyIndex];
        var extra = proposerKeys.Skip(4).Concat(builderKeys.Skip(3)).ToList();
        if (extra.Count > 0) await FundAsync(anvil.RpcUrl, extra, ct);

        // ---- contracts ----
        var genesis = DeployCommand.NextBoundary(s.SlotMs, 6000);
        Say("deploying the contracts (registry, escrow, inbox) and the builders' collateral");
        var deployment = await Deployer.DeployAsync(anvil.RpcUrl, DevKeys.Keys[0], new DeployParameters(s.L2ChainId, genesis, s.SlotMs, 32,
            GenesisProposers: [.. proposerKeys.Select(k => ProtocolKey.FromHex(k).Address)], WithdrawalDelaySeconds: 600,
            // The price rule and reserve are L1 market parameters (v2): the inbox and the relays must agree.
            PriceRule: s.PriceRule == "first_price" ? PriceRule.FirstPrice : PriceRule.SecondPrice,
            ReservePrice: BigInteger.Parse(s.ReservePrice, System.Globalization.CultureInfo.InvariantCulture)), ct: ct);
        var deploymentPath = Path.Combine(_runtime, "deployment.json");
        deployment.Save(deploymentPath);
        // Version 2: the relay is registered and bonded on L1, and the builders' collateral is allocated to it.
        await Deployer.RegisterRelayAsync(anvil.RpcUrl, deployment, relayKey);
        await Task.WhenAll(builderKeys.Select(k => Deployer.DepositAsync(anvil.RpcUrl, deployment, k, s.Collateral, ProtocolKey.FromHex(relayKey).Address)));

        // ---- relays ----
        var relayUrls = new List<string>();
        for (var i = 0; i < s.Relays; i++)
        {
            // The first relay where it was asked to be; the others (and all of them without --port) on a port
            // the OS picks at bind time, read back: no guessing that port + 1 is free.
            var port = s.Port is { } p0 && i == 0 ? p0 : 0;
            relayUrls.Add(await StartRelayAsync(i, port, deployment, redis.ConnectionString, pgConn, anvil.RpcUrl, relayKey, ct));
        }
        await Task.WhenAll(relayUrls.Select(u => WaitReadyAsync(u, ct)));
        var relayAddress = ProtocolKey.FromHex(relayKey).Address;

        // ---- proposer client (one client running every proposer key, asking every relay) ----
        if (s.Proposer) await StartProposerAsync(deployment, deploymentPath, anvil.RpcUrl, proposerKeys, relayUrls, relayAddress, ct);

        // ---- builders ----
        var builderInfo = new JsonArray();
        for (var i = 0; i < s.Builders; i++)
        {
            var strategy = BidStrategies.Names[i % BidStrategies.Names.Length];
            var name = $"builder-{i + 1}";
            var log = Logs($"{name}.log");
            var b = new DemoBuilder(new DemoBuilderOptions { Name = name, Relays = relayUrls, Strategy = strategy }, ProtocolKey.FromHex(builderKeys[i]),
                (level, message) => { log.Write($"{DateTime.Now:HH:mm:ss.fff} {level,-7} {message}"); });
            _builders.Add((b, b.RunAsync(_builderStop.Token)));
            builderInfo.Add(new JsonObject { ["name"] = name, ["strategy"] = strategy, ["address"] = b.Address.ToString(), ["collateral_wei"] = s.Collateral.ToString() });
        }

        var clock = new SlotClock(TimeProvider.System, (ulong)deployment.GenesisMs, (ulong)s.SlotMs, (ulong)s.CloseOffsetMs);
        if (s.JunkHeads)
        {
            var junkLog = Logs("junk-heads.log");
            _junk = new JunkHeads(deployment, ProtocolKey.FromHex(proposerKeys[0]), new InboxClient(L1Rpc.Connect(anvil.RpcUrl), deployment), relayUrls, clock,
                line => junkLog.Write($"{DateTime.Now:HH:mm:ss.fff} {line}"));
            _junkRun = _junk.RunAsync(_builderStop.Token);
            Say($"  junk heads  {ProtocolKey.FromHex(proposerKeys[0]).Address} also announces junk heads to every relay ({_runtime}/junk-heads.log)");
        }
        ulong? first = s.Slots is { } n0 ? Math.Max(clock.CurrentSlot + 3, 1) : null;
        var info = new JsonObject
        {
            ["runtime_dir"] = _runtime,
            ["pid"] = Environment.ProcessId,
            ["relays"] = new JsonArray([.. relayUrls.Select(u => (JsonNode)u)]),
            ["relay_address"] = relayAddress.ToString(),
            ["l1_rpc"] = anvil.RpcUrl,
            ["redis"] = redis.Endpoint,
            ["postgres"] = pgConn,
            ["deployment"] = deploymentPath,
            ["proposers"] = new JsonArray([.. proposerKeys.Select(k => (JsonNode)ProtocolKey.FromHex(k).Address.ToString())]),
            ["builders"] = builderInfo,
            ["first_slot"] = first?.ToString(CultureInfo.InvariantCulture),
            ["last_slot"] = first is { } f0 ? (f0 + (ulong)s.Slots!.Value - 1).ToString(CultureInfo.InvariantCulture) : null,
        };
        File.WriteAllText(Path.Combine(_runtime, "devnet.json"), info.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        PrintWhere(relayUrls, anvil, redis, pgConn, deployment, deploymentPath, proposerKeys, relayAddress);

        // ---- follow the market ----
        using var data = new HttpClient { BaseAddress = new Uri(relayUrls[0] + "/"), Timeout = TimeSpan.FromSeconds(5) };
        var monitor = new SlotMonitor(data, _builders.Select(b => b.Builder).ToList(), output);
        if (s.Slots is not { } count)
        {
            Say("following the market (Ctrl-C stops everything)");
            await monitor.FollowAsync(null, ct);
            Say($"stopping after {_uptime.Elapsed.TotalSeconds:0} s; {monitor.Printed} slot(s) seen");
            return ExitCodes.Ok;
        }
        var firstSlot = first!.Value;
        var lastSlot = firstSlot + (ulong)count - 1;
        Say($"running slots {firstSlot}..{lastSlot} ({count} slots of {s.SlotMs} ms)");
        var started = Stopwatch.StartNew();
        var deadline = DateTimeOffset.FromUnixTimeMilliseconds((long)clock.StartMs(lastSlot)).AddMilliseconds(6 * s.SlotMs).AddSeconds(30);
        using (var until = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            until.CancelAfter(deadline - DateTimeOffset.UtcNow);
            try
            {
                await monitor.FollowAsync((firstSlot, lastSlot), until.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                Say("timed out waiting for every slot to be posted or missed");
            }
        }
        ct.ThrowIfCancellationRequested();
        var elapsed = started.Elapsed;

        // Quiesce: no more bids or proposals; let the relays post what is already proposed, then read L1 once.
        await _builderStop.CancelAsync();
        await _proposerStop.CancelAsync();
        await Task.WhenAll(_builders.Select(b => b.Run));
        if (_junkRun is not null)
        {
            await _junkRun;
            Say($"junk heads: {_junk!.Sent} announced, {_junk.Adopted} adopted by a relay");
        }
        if (_proposerRun is not null) await _proposerRun;
        await monitor.WaitNoneProposedAsync(TimeSpan.FromSeconds(20), ct);

        var inbox = new InboxClient(L1Rpc.Connect(anvil.RpcUrl, TimeSpan.FromSeconds(10)), deployment);
        var check = await MarketCheck.RunAsync(data, inbox, deployment, firstSlot, lastSlot, _builders.Select(b => b.Builder).ToList(),
            [.. proposerKeys.Select(k => ProtocolKey.FromHex(k).Address)], s.Collateral, relayAddress, ct);
        check.Print(output, _builders.Select(b => b.Builder).ToList(), elapsed);
        File.WriteAllText(Path.Combine(_runtime, "summary.json"), check.ToJson(_builders.Select(b => b.Builder).ToList(), elapsed));

        if (s.Hold)
        {
            Say("holding: everything keeps running; press Enter (or close stdin) to stop");
            var read = Console.In.ReadLineAsync(ct).AsTask();
            try { await read; } catch (OperationCanceledException) { }
        }
        return check.Ok ? ExitCodes.Ok : ExitCodes.MarketCheckFailed;
    }

    T Own<T>(T server) where T : ServerProcess
    {
        server.OnStarted = pid => _watchdog?.Register(pid);
        _servers.Add(server);
        return server;
    }

    FileLoggerProvider Logs(string file)
    {
        var p = new FileLoggerProvider(Path.Combine(_runtime, file));
        _logs.Add(p);
        return p;
    }

    static string Derived(string role, int i) => "0x" + Convert.ToHexStringLower(L2Wallet.DeriveKey("pbs-devnet-" + role, i));

    static async Task FundAsync(string rpc, IEnumerable<string> keys, CancellationToken ct)
    {
        var account = new Nethereum.Web3.Accounts.Account(DevKeys.Keys[FunderIndex], 31337);
        var web3 = L1Rpc.Connect(rpc, TimeSpan.FromSeconds(30), account);
        foreach (var k in keys)
            await web3.Eth.GetEtherTransferService().TransferEtherAndWaitForReceiptAsync(ProtocolKey.FromHex(k).Address.ToString(), 100m, cancellationToken: ct);
    }

    async Task<string> StartRelayAsync(int index, int port, DeployedMarket d, string redis, string pg, string l1, string key, CancellationToken ct)
    {
        var c = CultureInfo.InvariantCulture;
        var settings = new Dictionary<string, string?>
        {
            ["Relay:Redis"] = redis,
            ["Relay:Postgres"] = pg,
            ["Relay:L1Rpc"] = l1,
            ["Relay:Network"] = "devnet",
            ["Relay:CloseOffsetMs"] = s.CloseOffsetMs.ToString(c),
            ["Relay:SigningKey"] = key,
            ["Relay:ReservePrice"] = s.ReservePrice,
            ["Relay:PriceRule"] = s.PriceRule == "first_price" ? "FirstPrice" : "SecondPrice",
            ["Relay:InstanceId"] = $"devnet-relay-{index + 1}",
        };
        RelayCommand.Fill(settings, d);
        var log = Logs($"relay-{index + 1}.log");
        var app = RelayHost.Build([], b =>
        {
            b.Configuration.AddInMemoryCollection(settings);
            b.WebHost.UseUrls($"http://127.0.0.1:{port}");
            b.Logging.ClearProviders();
            b.Logging.AddFilter<Microsoft.Extensions.Logging.Console.ConsoleLoggerProvider>((_, _) => false);
            b.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
            b.Logging.AddProvider(log);
        });
        _relays.Add(app);
        await app.StartAsync(ct);
        // With port 0 Kestrel binds a free port; the address it reports is the real one.
        return app.Urls.First().TrimEnd('/');
    }

    static async Task WaitReadyAsync(string url, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var r = await http.GetAsync($"{url}/readyz", ct);
                if (r.IsSuccessStatusCode) return;
                last = await r.Content.ReadAsStringAsync(ct);
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                last = "timeout";
            }
            await Task.Delay(100, ct);
        }
        throw new TimeoutException($"relay {url} not ready within 30 s: {last}");
    }

    async Task StartProposerAsync(DeployedMarket d, string deploymentPath, string l1, List<string> keys, List<string> relays, Address relayAddress, CancellationToken ct)
    {
        var o = new ProposerOptions
        {
            DeploymentFile = deploymentPath,
            L1Rpc = l1,
            CloseOffsetMs = s.CloseOffsetMs,
            DataDir = Path.Combine(_runtime, "proposer"),
        };
        for (var i = 0; i < keys.Count; i++)
        {
            // Development only: the proposer client reads raw dev keys from environment variables of this process.
            var env = $"PBS_DEVNET_PROPOSER_KEY_{i + 1}";
            Environment.SetEnvironmentVariable(env, keys[i]);
            o.Keys.Add(new ProposerKeyOptions { PrivateKeyEnv = env });
        }
        for (var i = 0; i < relays.Count; i++) o.Relays.Add(new RelayEndpointOptions { Name = $"relay-{i + 1}", Url = relays[i], Address = relayAddress.ToString() });
        var log = Logs("proposer.log");
        var factory = LoggerFactory.Create(b => b.AddProvider(log).SetMinimumLevel(LogLevel.Information));
        _proposer = new ProposerClient(o, factory);
        await _proposer.StartAsync(ct);
        _proposerRun = Task.Run(async () =>
        {
            try { await _proposer.RunAsync(_proposerStop.Token); }
            catch (OperationCanceledException) { }
            catch (Exception e) { log.Write($"proposer stopped: {e}"); errors.WriteLine($"pbs devnet: the proposer client stopped: {e.Message}"); }
        }, CancellationToken.None);
    }

    void PrintWhere(List<string> relays, AnvilNode anvil, RedisServer redis, string pg, DeployedMarket d, string deploymentPath, List<string> proposerKeys, Address relayAddress)
    {
        var web = Directory.Exists(Path.Combine(Tools.RepoRoot ?? "", "web", "dist")) || Environment.GetEnvironmentVariable("PBS_WEB_ROOT") is not null;
        Say("");
        Say("PbsMarket devnet is up");
        Say($"  dashboard   {relays[0]}/{(web ? "" : "   (not built: run scripts/build-web.sh, then restart)")}");
        for (var i = 0; i < relays.Count; i++)
            Say($"  relay {i + 1}     {relays[i]}  (builder API /relay/v1/builder, proposer API /relay/v1/proposer, data API /relay/v1/data, /metrics)");
        Say($"  L1 RPC      {anvil.RpcUrl}  (anvil, chain id {d.L1ChainId}, a block every second)");
        Say($"  Redis       {redis.Endpoint}");
        Say($"  PostgreSQL  {pg}");
        Say($"  contracts   inbox {d.Inbox}, registry {d.Registry}, escrow {d.Escrow}  ({deploymentPath})");
        Say($"  slots       {s.SlotMs} ms, auctions close {s.CloseOffsetMs} ms before the slot, L2 chain id {d.L2ChainId}, genesis {DateTimeOffset.FromUnixTimeMilliseconds(d.GenesisMs):HH:mm:ss}");
        Say($"  proposers   {string.Join(", ", proposerKeys.Select(k => ProtocolKey.FromHex(k).Address))}{(s.Proposer ? "" : "  (no proposer client: --no-proposer)")}");
        foreach (var (b, _) in _builders) Say($"  {b.Name,-11} {b.Address} ({b.StrategyName}), {UnitConversion.Convert.FromWei(s.Collateral)} ETH collateral");
        Say($"  relay key   {relayAddress}");
        Say($"  logs        {_runtime}/*.log");
        Say($"  note        {DevKeys.Warning}");
        Say("");
    }

    async Task ShutdownAsync()
    {
        await _builderStop.CancelAsync();
        await _proposerStop.CancelAsync();
        try { await Task.WhenAll(_builders.Select(b => b.Run)).WaitAsync(TimeSpan.FromSeconds(10)); } catch (Exception) { /* stopping anyway */ }
        foreach (var (b, _) in _builders) await b.DisposeAsync();
        if (_proposerRun is not null) { try { await _proposerRun.WaitAsync(TimeSpan.FromSeconds(10)); } catch (TimeoutException) { } }
        if (_proposer is not null) { try { await _proposer.DisposeAsync(); } catch (Exception e) { errors.WriteLine($"pbs devnet: stopping the proposer: {e.Message}"); } }
        foreach (var app in _relays)
        {
            try
            {
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await app.StopAsync(stop.Token);
                await app.DisposeAsync();
            }
            catch (Exception e)
            {
                errors.WriteLine($"pbs devnet: stopping a relay: {e.Message}");
            }
        }
        await Task.WhenAll(_servers.Select(x => x.DisposeAsync().AsTask()));
        foreach (var l in _logs) l.Dispose();
        _watchdog?.Dispose();
        try { File.Delete(Path.Combine(_runtime, "pbs.pid")); } catch (IOException) { }
        if (_servers.Count > 0) output.WriteLine("stopped: every server and process of the devnet has ended");
    }
}
