using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nethereum.Util;
using PbsMarket.Builder.Demo;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.LocalServers;
using PbsMarket.Relay.Infrastructure;

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
    /// <summary>The relays' Relay:Simulation (pessimistic | optimistic).</summary>
    public string Simulation { get; set; } = "pessimistic";
    public string ReservePrice { get; set; } = "1000";
    public BigInteger Collateral { get; set; } = UnitConversion.Convert.ToWei(10);
    public bool Proposer { get; set; } = true;
    /// <summary>The first proposer also announces junk heads (<see cref="JunkHeads"/>).</summary>
    public bool JunkHeads { get; set; }
}

/// <summary>A child that exited or failed while the devnet needed it (exit code 1, with the tail of its log).</summary>
public sealed class ChildFailedException(PbsChild child, string what) : Exception($"{child.Name} (pid {child.Pid}, `pbs {child.Role} --config {child.ConfigPath}`) {what}")
{
    public PbsChild Child { get; } = child;
    public string What { get; } = what;
}

/// <summary>
/// The whole market on this machine, as a deployment of separate processes: Redis, PostgreSQL and anvil as child
/// processes with their files in one runtime folder; the contracts deployed by `pbs deploy`; two `pbs relay`, one
/// `pbs proposer` holding every proposer key and one `pbs builder` per builder, each from a config file and keystores
/// this runner writes into the runtime folder, each with its own log there. Prints where everything is and one line per
/// slot; with <see cref="DevnetSettings.Slots"/> it stops after that many slots and checks the market (every slot posted
/// or missed with a reason, L1 events = data API, balances = prices).
/// </summary>
public sealed class DevnetRunner(DevnetSettings s, TextWriter output, TextWriter errors)
{
    const int RelayKeyIndex = 9, FunderIndex = 8;
    static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10), RelayStopGrace = TimeSpan.FromSeconds(20);
    static readonly TimeSpan RelayReadyTimeout = TimeSpan.FromSeconds(60), DeployTimeout = TimeSpan.FromMinutes(3);
    readonly List<ServerProcess> _servers = [];
    readonly object _gate = new();
    readonly List<PbsChild> _all = [];
    readonly List<PbsChild> _relays = [];
    readonly List<PbsChild> _builderProcesses = [];
    PbsChild? _proposer;
    PbsChild? _l2node;
    PbsChild? _l2users;
    readonly List<DevnetBuilder> _builders = [];
    readonly List<ILoggerProvider> _logs = [];
    readonly CancellationTokenSource _junkStop = new();
    readonly CancellationTokenSource _childDied = new();
    PbsChild? _died;
    JunkHeads? _junk;
    Task? _junkRun;
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
        catch (OperationCanceledException) when (_died is { } c && !ct.IsCancellationRequested)
        {
            ReportFailure(c, $"exited on its own with code {(c.Exited.IsCompleted ? c.Exited.Result : -1)}");
            return ExitCodes.Failure;
        }
        catch (ChildFailedException e) when (!ct.IsCancellationRequested)
        {
            ReportFailure(e.Child, e.What);
            return ExitCodes.Failure;
        }
        finally
        {
            await ShutdownAsync();
        }
    }

    void ReportFailure(PbsChild c, string what)
    {
        errors.WriteLine($"pbs devnet: {c.Name} (pid {c.Pid}, `pbs {c.Role} --config {c.ConfigPath}`) {what}; the last lines of {c.LogPath}:");
        foreach (var line in c.Tail(20).Split('\n')) errors.WriteLine("    " + line);
        errors.WriteLine("pbs devnet: stopping the rest");
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
            if (ended > 0) Say($"ended {ended} process(es) left running by a previous devnet in {_runtime}");
            Directory.Delete(_runtime, recursive: true);
        }
        Directory.CreateDirectory(_runtime);
        Directory.CreateDirectory(Path.Combine(_runtime, "config"));
        var keysDir = Path.Combine(_runtime, "keys");
        Directory.CreateDirectory(keysDir);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keysDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(pidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        _watchdog = new Watchdog(_runtime);
        _watchdog.Start();

        // ---- servers ----
        Say($"starting Redis, PostgreSQL, anvil (L1) and the L2 engine (runtime folder {_runtime})");
        // Append-only file, fsync once a second: a restart after kill -9 keeps everything acknowledged (docs/relay.md).
        var redis = Own(new RedisServer(Path.Combine(_runtime, "redis"), appendFsync: "everysec"));
        var postgres = Own(new PostgresServer(Path.Combine(_runtime, "postgres")));
        var anvil = Own(new AnvilNode(Path.Combine(_runtime, "anvil"), blockTimeSeconds: 1));
        var l2engine = Own(new L2EngineNode(Path.Combine(_runtime, "l2engine"), s.L2ChainId));
        // ---- keys: anvil's public dev accounts (0 deployer, 1-4 proposers, 5-7 builders, 9 relay), extra ones derived and funded ----
        var proposerKeys = Enumerable.Range(0, s.Proposers).Select(i => i < 4 ? DevKeys.Keys[1 + i] : Derived("proposer", i)).ToList();
        var builderKeys = Enumerable.Range(0, s.Builders).Select(i => i < 3 ? DevKeys.Keys[5 + i] : Derived("builder", i)).ToList();
        var relayKey = DevKeys.Keys[RelayKeyIndex];
        // Each key in its own keystore (light scrypt: throwaway keys) with its own random password file, both mode 600,
        // written while the servers start.
        var keystores = Task.Run(() =>
        {
            var named = new List<(string Name, string Hex)> { ("deployer", DevKeys.Keys[0]), ("relay", relayKey) };
            named.AddRange(proposerKeys.Select((k, i) => ($"proposer-{i + 1}", k)));
            named.AddRange(builderKeys.Select((k, i) => ($"builder-{i + 1}", k)));
            Parallel.ForEach(named, n => SecretFiles.WriteKeystoreWithPassword(Keystore(n.Name), PasswordFile(n.Name), n.Hex, light: true));
        }, ct);
        await Task.WhenAll(redis.StartAsync(ct), postgres.StartAsync(ct), anvil.StartAsync(ct), l2engine.StartAsync(ct), keystores);
        await postgres.ExecAsync("CREATE DATABASE relay", ct: ct);
        var pgConn = postgres.ConnectionString("relay");
        var extra = proposerKeys.Skip(4).Concat(builderKeys.Skip(3)).ToList();
        if (extra.Count > 0) await FundAsync(anvil.RpcUrl, extra, ct);

        // ---- contracts: `pbs deploy` ----
        var deploymentPath = Path.Combine(_runtime, "deployment.json");
        var genesis = DeployCommand.NextBoundary(s.SlotMs, 8000);
        var deployConfig = WriteConfig("deploy", new JsonObject
        {
            ["Deploy"] = new JsonObject
            {
                ["L1Rpc"] = anvil.RpcUrl,
                ["Out"] = deploymentPath,
                ["Proposers"] = new JsonArray([.. proposerKeys.Select(k => (JsonNode)ProtocolKey.FromHex(k).Address.ToString())]),
                ["SlotMs"] = s.SlotMs,
                ["SlotsPerEpoch"] = 32,
                ["L2ChainId"] = s.L2ChainId,
                ["GenesisMs"] = genesis,
                ["WithdrawalDelaySeconds"] = 600,
                // The price rule and reserve are L1 market parameters (v2): the inbox and the relays must agree.
                ["PriceRule"] = s.PriceRule,
                ["ReserveWei"] = s.ReservePrice,
                ["Keystore"] = Keystore("deployer"),
                ["PasswordFile"] = PasswordFile("deployer"),
            },
        });
        Say($"deploying the contracts (registry, escrow, inbox): pbs deploy --config {deployConfig}");
        var deploy = Launch("deploy", "deploy", deployConfig, [Keystore("deployer")], null);
        int deployed;
        try
        {
            deployed = await deploy.Exited.WaitAsync(DeployTimeout, ct);
        }
        catch (TimeoutException)
        {
            throw new ChildFailedException(deploy, $"did not finish within {DeployTimeout.TotalMinutes:0} minutes");
        }
        if (deployed != 0) throw new ChildFailedException(deploy, $"failed with exit code {deployed}");
        var deployment = DeployedMarket.Load(deploymentPath);
        // Version 2: the relay is registered and bonded on L1, and the builders' collateral is allocated to it.
        Say("registering the relay on L1 and depositing the builders' collateral");
        await Deployer.RegisterRelayAsync(anvil.RpcUrl, deployment, relayKey);
        await Task.WhenAll(builderKeys.Select(k => Deployer.DepositAsync(anvil.RpcUrl, deployment, k, s.Collateral, ProtocolKey.FromHex(relayKey).Address)));
        var relayAddress = ProtocolKey.FromHex(relayKey).Address;

        // ---- relays: `pbs relay` each, started together; each must answer /readyz before anything else starts ----
        var relaySection = new Dictionary<string, string?>
        {
            ["Relay:Redis"] = redis.ConnectionString,
            ["Relay:Postgres"] = pgConn,
            ["Relay:L1Rpc"] = anvil.RpcUrl,
            ["Relay:Network"] = "devnet",
            ["Relay:CloseOffsetMs"] = s.CloseOffsetMs.ToString(CultureInfo.InvariantCulture),
            ["Relay:KeystorePath"] = Keystore("relay"),
            ["Relay:KeystorePasswordFile"] = PasswordFile("relay"),
            ["Relay:ReservePrice"] = s.ReservePrice,
            ["Relay:PriceRule"] = s.PriceRule == "first_price" ? "FirstPrice" : "SecondPrice",
        };
        RelayCommand.Fill(relaySection, deployment);
        // The L2 node's ports are chosen now: the relays simulate every bid on its relay port (it starts after them,
        // since it follows their heads; until it is up, bids are answered 503).
        var l2Port = FreePort.Next();
        var l2RelayPort = FreePort.Next();
        var l2Rpc = $"http://127.0.0.1:{l2Port}";
        var l2SimRpc = $"http://127.0.0.1:{l2RelayPort}";
        relaySection["Relay:L2Rpc"] = l2SimRpc;
        // Pessimistic by default: every bid simulated before its receipt. Optimistic (docs/l2.md): bids answered without
        // waiting for the L2 node, the winner simulated at the latest at the close.
        relaySection["Relay:Simulation"] = s.Simulation;
        Say($"starting {s.Relays} relay process(es)");
        // The first relay where it was asked to be; the others (and all of them without --port) on a free port.
        var relays = await Task.WhenAll(Enumerable.Range(0, s.Relays).Select(i => StartRelayAsync(i, s.Port is { } p0 && i == 0 ? p0 : null, relaySection, ct)));
        var relayUrls = relays.Select(r => r.Url!).ToList();
        foreach (var r in relays) Watch(r);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct, _childDied.Token);

        // ---- the L2 node: `pbs l2node`, deriving the chain on the L2 engine from L1 and the relays' heads ----
        var l2Config = WriteConfig("l2node", new JsonObject
        {
            ["Logging"] = LoggingSection(),
            ["L2Node"] = new JsonObject
            {
                ["DeploymentFile"] = deploymentPath,
                ["L1Rpc"] = anvil.RpcUrl,
                ["EngineRpc"] = l2engine.RpcUrl,
                ["Relays"] = new JsonArray([.. relayUrls.Select(u => (JsonNode)u)]),
                ["Port"] = l2Port,
                ["RelayPort"] = l2RelayPort,
            },
        });
        Say($"starting the L2 node: pbs l2node --config {l2Config}");
        _l2node = Launch("l2node", "l2node", l2Config, [], l2Rpc);
        if (!await WaitReadyAsync(_l2node, ct)) throw new ChildFailedException(_l2node, $"exited with code {await _l2node.Exited} while starting");
        Watch(_l2node);

        // ---- proposer: one `pbs proposer` with every proposer key, asking every relay (with --no-proposer its config is
        // written all the same, for starting it by hand) ----
        var proposerConfig = WriteConfig("proposer", new JsonObject
        {
            ["Logging"] = LoggingSection(),
            ["Proposer"] = new JsonObject
            {
                ["DeploymentFile"] = deploymentPath,
                ["L1Rpc"] = anvil.RpcUrl,
                ["CloseOffsetMs"] = s.CloseOffsetMs,
                ["DataDir"] = Path.Combine(_runtime, "proposer"),
                ["Keys"] = new JsonArray([.. proposerKeys.Select((_, i) => (JsonNode)new JsonObject
                {
                    ["KeystorePath"] = Keystore($"proposer-{i + 1}"), ["PasswordFile"] = PasswordFile($"proposer-{i + 1}"),
                })]),
                ["Relays"] = new JsonArray([.. relayUrls.Select((u, i) => (JsonNode)new JsonObject
                {
                    ["Name"] = $"relay-{i + 1}", ["Url"] = u, ["Address"] = relayAddress.ToString(),
                })]),
            },
        });
        if (s.Proposer)
        {
            _proposer = Launch("proposer", "proposer", proposerConfig, [.. proposerKeys.Select((_, i) => Keystore($"proposer-{i + 1}"))], null);
            Watch(_proposer);
        }

        // ---- builders: one `pbs builder` each ----
        var builderInfo = new JsonArray();
        for (var i = 0; i < s.Builders; i++)
        {
            var strategy = BidStrategies.Names[i % BidStrategies.Names.Length];
            var name = $"builder-{i + 1}";
            var config = WriteConfig(name, new JsonObject
            {
                ["Builder"] = new JsonObject
                {
                    ["Name"] = name,
                    ["Relays"] = new JsonArray([.. relayUrls.Select(u => (JsonNode)u)]),
                    ["Strategy"] = strategy,
                    ["Keystore"] = Keystore(name),
                    ["PasswordFile"] = PasswordFile(name),
                    ["StatsFile"] = StatsFile(name),
                    ["L2Rpc"] = l2Rpc,
                    ["L2SimulationRpc"] = l2SimRpc,
                },
            });
            var child = Launch(name, "builder", config, [Keystore(name)], null);
            _builderProcesses.Add(child);
            Watch(child);
            var b = new DevnetBuilder(name, strategy, ProtocolKey.FromHex(builderKeys[i]).Address);
            _builders.Add(b);
            builderInfo.Add(new JsonObject { ["name"] = name, ["strategy"] = strategy, ["address"] = b.Address.ToString(), ["collateral_wei"] = s.Collateral.ToString(), ["pid"] = child.Pid });
        }

        // ---- L2 users: `pbs l2users`, transfers and contract calls with real tips ----
        var usersConfig = WriteConfig("l2users", new JsonObject
        {
            ["L2Users"] = new JsonObject { ["L2Rpc"] = l2Rpc, ["L2ChainId"] = s.L2ChainId, ["Users"] = 6, ["IntervalMs"] = Math.Clamp(s.SlotMs / 4, 50, 1000) },
        });
        _l2users = Launch("l2users", "l2users", usersConfig, [], null);
        Watch(_l2users);

        // The proposer and the builders have no health endpoint: each is up once it says so in its log (a .NET start
        // costs a second or more on a loaded machine; the run's first slot is picked after that).
        var starting = _builderProcesses.Select(c => WaitSaysAsync(c, $"pbs builder: {c.Name} ", run.Token)).ToList();
        if (_proposer is not null) starting.Add(WaitSaysAsync(_proposer, "pbs proposer: running", run.Token));
        starting.Add(WaitSaysAsync(_l2users, "pbs l2users: ", run.Token));
        await Task.WhenAll(starting);

        var clock = new SlotClock(TimeProvider.System, (ulong)deployment.GenesisMs, (ulong)s.SlotMs, (ulong)s.CloseOffsetMs);
        if (s.JunkHeads)
        {
            var junkLog = Logs("junk-heads.log");
            _junk = new JunkHeads(deployment, ProtocolKey.FromHex(proposerKeys[0]), new InboxClient(L1Rpc.Connect(anvil.RpcUrl), deployment), relayUrls, clock,
                line => junkLog.Write($"{DateTime.Now:HH:mm:ss.fff} {line}"));
            _junkRun = _junk.RunAsync(_junkStop.Token);
            Say($"  junk heads  {ProtocolKey.FromHex(proposerKeys[0]).Address} also announces junk heads to every relay ({_runtime}/junk-heads.log)");
        }
        ulong? first = s.Slots is not null ? Math.Max(clock.CurrentSlot + 3, 1) : null;
        var info = new JsonObject
        {
            ["runtime_dir"] = _runtime,
            ["pid"] = Environment.ProcessId,
            ["relays"] = new JsonArray([.. relayUrls.Select(u => (JsonNode)u)]),
            ["relay_address"] = relayAddress.ToString(),
            ["l1_rpc"] = anvil.RpcUrl,
            ["l2_rpc"] = l2Rpc,
            ["l2_engine_rpc"] = l2engine.RpcUrl,
            ["l2_chain_id"] = s.L2ChainId,
            ["redis"] = redis.Endpoint,
            ["postgres"] = pgConn,
            ["deployment"] = deploymentPath,
            ["proposers"] = new JsonArray([.. proposerKeys.Select(k => (JsonNode)ProtocolKey.FromHex(k).Address.ToString())]),
            ["builders"] = builderInfo,
            ["proposer_config"] = proposerConfig,
            // Every `pbs` process of the devnet (deploy has exited by now, with code 0).
            ["processes"] = new JsonArray([.. Children().Select(c => (JsonNode)c.ToJson())]),
            ["servers"] = new JsonArray([.. _servers.Select(x => (JsonNode)new JsonObject { ["kind"] = x.Kind, ["pid"] = x.Pid, ["port"] = x.Port, ["log"] = x.LogPath })]),
            ["first_slot"] = first?.ToString(CultureInfo.InvariantCulture),
            ["last_slot"] = first is { } f0 ? (f0 + (ulong)s.Slots!.Value - 1).ToString(CultureInfo.InvariantCulture) : null,
        };
        File.WriteAllText(Path.Combine(_runtime, "devnet.json"), info.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        PrintWhere(relays, anvil, redis, pgConn, deployment, deploymentPath, proposerKeys, relayAddress, l2Rpc, l2engine);

        // ---- follow the market ----
        using var data = new HttpClient { BaseAddress = new Uri(relayUrls[0] + "/"), Timeout = TimeSpan.FromSeconds(5) };
        var monitor = new SlotMonitor(data, _builders, output);
        if (s.Slots is not { } count)
        {
            Say("following the market (Ctrl-C stops everything)");
            await monitor.FollowAsync(null, run.Token);
            Say($"stopping after {_uptime.Elapsed.TotalSeconds:0} s; {monitor.Printed} slot(s) seen");
            return ExitCodes.Ok;
        }
        var firstSlot = first!.Value;
        var lastSlot = firstSlot + (ulong)count - 1;
        Say($"running slots {firstSlot}..{lastSlot} ({count} slots of {s.SlotMs} ms)");
        var started = Stopwatch.StartNew();
        var deadline = DateTimeOffset.FromUnixTimeMilliseconds((long)clock.StartMs(lastSlot)).AddMilliseconds(6 * s.SlotMs).AddSeconds(30);
        using (var until = CancellationTokenSource.CreateLinkedTokenSource(run.Token))
        {
            until.CancelAfter(deadline - DateTimeOffset.UtcNow);
            try
            {
                await monitor.FollowAsync((firstSlot, lastSlot), until.Token);
            }
            catch (OperationCanceledException) when (!run.IsCancellationRequested)
            {
                Say("timed out waiting for every slot to be posted or missed");
            }
        }
        run.Token.ThrowIfCancellationRequested();
        var elapsed = started.Elapsed;

        // Quiesce: no more bids or proposals (the builders write their stats as they stop); let the relays post what is
        // already proposed, then read L1 once.
        await Task.WhenAll(StopAsync(_builderProcesses, StopGrace), StopAsync(_proposer is null ? [] : [_proposer], StopGrace), StopAsync(_l2users is null ? [] : [_l2users], StopGrace), StopJunkAsync());
        foreach (var b in _builders) b.Stats = BuilderStats.Read(StatsFile(b.Name));
        await monitor.WaitNoneProposedAsync(TimeSpan.FromSeconds(20), run.Token);

        var inbox = new InboxClient(L1Rpc.Connect(anvil.RpcUrl, TimeSpan.FromSeconds(10)), deployment);
        var check = await MarketCheck.RunAsync(data, inbox, deployment, firstSlot, lastSlot, _builders,
            [.. proposerKeys.Select(k => ProtocolKey.FromHex(k).Address)], s.Collateral, relayAddress, run.Token);
        var l2 = await L2Check.RunAsync(l2Rpc, inbox, deployment, firstSlot, lastSlot, run.Token);
        check.Problems.AddRange(l2.Problems);
        check.Print(output, _builders, elapsed);
        Say(l2.Summary);
        File.WriteAllText(Path.Combine(_runtime, "summary.json"), check.ToJson(_builders, elapsed));

        if (s.Hold)
        {
            Say("holding: the relays and servers keep running; press Enter (or close stdin) to stop");
            var read = Console.In.ReadLineAsync(run.Token).AsTask();
            try { await read; } catch (OperationCanceledException) when (!_childDied.IsCancellationRequested) { }
        }
        return check.Ok ? ExitCodes.Ok : ExitCodes.MarketCheckFailed;
    }

    // ---- files of the runtime folder ----

    string Keystore(string name) => Path.Combine(_runtime, "keys", name + ".json");
    string PasswordFile(string name) => Path.Combine(_runtime, "keys", name + ".password");
    string StatsFile(string builder) => Path.Combine(_runtime, builder + ".stats.json");
    string LogFile(string name) => Path.Combine(_runtime, name + ".log");

    string WriteConfig(string name, JsonObject root)
    {
        var path = Path.Combine(_runtime, "config", name + ".json");
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>Console logging for the hosted commands (relay, proposer): one line each, no per-request lines.</summary>
    static JsonObject LoggingSection() => new()
    {
        ["LogLevel"] = new JsonObject
        {
            ["Default"] = "Information",
            ["Microsoft.AspNetCore"] = "Warning",
            ["System.Net.Http.HttpClient"] = "Warning",
        },
        ["Console"] = new JsonObject
        {
            ["FormatterName"] = "simple",
            ["FormatterOptions"] = new JsonObject { ["SingleLine"] = true, ["TimestampFormat"] = "HH:mm:ss.fff " },
        },
    };

    // ---- children ----

    PbsChild Launch(string name, string role, string config, IReadOnlyList<string> keystores, string? url)
    {
        var child = PbsChild.Start(name, role, config, keystores, LogFile(name), url, _runtime, pid => _watchdog?.Register(pid));
        lock (_gate) _all.Add(child);
        return child;
    }

    List<PbsChild> Children()
    {
        lock (_gate) return [.. _all];
    }

    /// <summary>From now on an exit of <paramref name="c"/> that the devnet did not ask for ends the devnet (exit code 1).</summary>
    void Watch(PbsChild c) => _ = c.Exited.ContinueWith(_ =>
    {
        if (c.Stopping) return;
        if (Interlocked.CompareExchange(ref _died, c, null) is null) _childDied.Cancel();
    }, TaskScheduler.Default);

    async Task<PbsChild> StartRelayAsync(int index, int? fixedPort, Dictionary<string, string?> relaySettings, CancellationToken ct)
    {
        var name = $"relay-{index + 1}";
        for (var attempt = 1; ; attempt++)
        {
            var port = fixedPort ?? FreePort.Next();
            var url = $"http://127.0.0.1:{port}";
            var relay = new JsonObject(relaySettings.Select(kv => KeyValuePair.Create(kv.Key["Relay:".Length..], (JsonNode?)kv.Value)))
            {
                ["InstanceId"] = $"devnet-{name}",
            };
            var config = WriteConfig(name, new JsonObject { ["Urls"] = url, ["Logging"] = LoggingSection(), ["Relay"] = relay });
            var child = Launch(name, "relay", config, [Keystore("relay")], url);
            lock (_gate) _relays.Add(child);
            if (await WaitReadyAsync(child, ct)) return child;
            // It exited while starting. A free port picked here can be taken before the relay binds it: pick another.
            if (fixedPort is null && attempt < 4 && child.Tail(5).Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                lock (_gate) _relays.Remove(child);
                continue;
            }
            throw new ChildFailedException(child, $"exited with code {await child.Exited} while starting");
        }
    }

    /// <summary>True once the relay answers /readyz; false when it exited first; throws when it is not ready in time.</summary>
    static async Task<bool> WaitReadyAsync(PbsChild relay, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        var last = "";
        while (deadline.Elapsed < RelayReadyTimeout)
        {
            if (!relay.IsRunning) return false;
            try
            {
                using var r = await http.GetAsync($"{relay.Url}/readyz", ct);
                if (r.IsSuccessStatusCode) return relay.IsRunning;
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
            await Task.WhenAny(Task.Delay(100, ct), relay.Exited);
            ct.ThrowIfCancellationRequested();
        }
        throw new ChildFailedException(relay, $"did not answer {relay.Url}/readyz within {RelayReadyTimeout.TotalSeconds:0} s: {last}");
    }

    /// <summary>Waits until <paramref name="c"/>'s log holds <paramref name="marker"/> (deadline 60 s; an exit first ends the
    /// devnet through <see cref="Watch"/>).</summary>
    static async Task WaitSaysAsync(PbsChild c, string marker, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (!c.Tail(50).Contains(marker, StringComparison.Ordinal))
        {
            if (deadline.Elapsed > RelayReadyTimeout) throw new ChildFailedException(c, $"did not start within {RelayReadyTimeout.TotalSeconds:0} s (no \"{marker}\" in its log)");
            await Task.Delay(100, ct);
        }
    }

    /// <summary>Stops the given children together (SIGTERM, <paramref name="grace"/>, SIGKILL) and says which did not end cleanly.</summary>
    async Task StopAsync(IReadOnlyList<PbsChild> children, TimeSpan grace)
    {
        var codes = await Task.WhenAll(children.Select(async c => (c, Code: await c.StopAsync(grace))));
        foreach (var (c, code) in codes)
            if (code != 0 && c != _died) errors.WriteLine($"pbs devnet: {c.Name} (pid {c.Pid}) ended with code {code} when stopped; see {c.LogPath}");
    }

    async Task StopJunkAsync()
    {
        await _junkStop.CancelAsync();
        if (_junkRun is null) return;
        try { await _junkRun.WaitAsync(TimeSpan.FromSeconds(10)); } catch (Exception e) when (e is TimeoutException or OperationCanceledException) { }
        if (_junk is not null && _junkRun.IsCompletedSuccessfully) Say($"junk heads: {_junk.Sent} announced, {_junk.Adopted} adopted by a relay");
        _junkRun = null;
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

    void PrintWhere(IReadOnlyList<PbsChild> relays, AnvilNode anvil, RedisServer redis, string pg, DeployedMarket d, string deploymentPath, List<string> proposerKeys, Address relayAddress,
        string l2Rpc, L2EngineNode l2engine)
    {
        var web = Directory.Exists(Path.Combine(Tools.RepoRoot ?? "", "web", "dist")) || Environment.GetEnvironmentVariable("PBS_WEB_ROOT") is not null;
        string Rel(string path) => Path.GetRelativePath(_runtime, path);
        string Process(PbsChild c) => $"pid {c.Pid,-7} pbs {c.Role} --config {Rel(c.ConfigPath)}{(c.Keystores.Count == 0 ? "" : $", keys {string.Join(" ", c.Keystores.Select(Rel))}")}, log {Rel(c.LogPath)}";
        Say("");
        Say("PbsMarket devnet is up");
        Say($"  dashboard   {relays[0].Url}/{(web ? "" : "   (not built: run scripts/build-web.sh, then restart)")}");
        for (var i = 0; i < relays.Count; i++)
        {
            Say($"  relay {i + 1}     {relays[i].Url}  (builder API /relay/v1/builder, proposer API /relay/v1/proposer, data API /relay/v1/data, /metrics)");
            Say($"              {Process(relays[i])}");
        }
        Say($"  L1 RPC      {anvil.RpcUrl}  (anvil, chain id {d.L1ChainId}, a block every second)");
        Say($"L2 RPC {l2Rpc}");
        Say($"              the L2 chain (id {d.L2ChainId}): balances, receipts, blocks, eth_sendRawTransaction; accounts 0-19 of anvil's test mnemonic are funded");
        if (_l2node is not null) Say($"  l2node      {Process(_l2node)}, engine {l2engine.RpcUrl} (anvil)");
        if (_l2users is not null) Say($"  l2users     {Process(_l2users)}");
        Say($"  Redis       {redis.Endpoint}");
        Say($"  PostgreSQL  {pg}");
        Say($"  contracts   inbox {d.Inbox}, registry {d.Registry}, escrow {d.Escrow}  ({deploymentPath}, by pbs deploy --config {Rel(Path.Combine(_runtime, "config", "deploy.json"))}, log deploy.log)");
        Say($"  slots       {s.SlotMs} ms, auctions close {s.CloseOffsetMs} ms before the slot, L2 chain id {d.L2ChainId}, genesis {DateTimeOffset.FromUnixTimeMilliseconds(d.GenesisMs):HH:mm:ss}");
        Say($"  proposers   {string.Join(", ", proposerKeys.Select(k => ProtocolKey.FromHex(k).Address))}{(s.Proposer ? "" : "  (no proposer client: --no-proposer)")}");
        if (_proposer is not null) Say($"  proposer    {Process(_proposer)}");
        else Say($"  proposer    not started (--no-proposer); its config is ready: pbs proposer --config {Path.Combine(_runtime, "config", "proposer.json")}");
        for (var i = 0; i < _builders.Count; i++)
        {
            var b = _builders[i];
            Say($"  {b.Name,-11} {b.Address} ({b.StrategyName}), {UnitConversion.Convert.FromWei(s.Collateral)} ETH collateral");
            Say($"              {Process(_builderProcesses[i])}");
        }
        Say($"  relay key   {relayAddress}");
        Say($"  files       under {_runtime}: config/*.json, keys/* (mode 600), *.log, devnet.json");
        Say($"  note        {DevKeys.Warning}");
        Say("");
    }

    async Task ShutdownAsync()
    {
        // Builders and the proposer first, then the relays, then the servers; each child gets SIGTERM and a deadline.
        List<PbsChild> relays;
        lock (_gate) relays = [.. _relays];
        await Task.WhenAll(StopAsync(_builderProcesses, StopGrace), StopAsync(_proposer is null ? [] : [_proposer], StopGrace),
            StopAsync(_l2users is null ? [] : [_l2users], StopGrace), StopJunkAsync());
        await StopAsync(relays, RelayStopGrace);
        if (_l2node is not null) await StopAsync([_l2node], StopGrace);
        await StopAsync(Children().Where(c => c.IsRunning).ToList(), StopGrace); // `pbs deploy` if it was still running
        await Task.WhenAll(_servers.Select(x => x.DisposeAsync().AsTask()));
        foreach (var l in _logs) l.Dispose();
        _watchdog?.Dispose();
        try { File.Delete(Path.Combine(_runtime, "pbs.pid")); } catch (IOException) { }
        if (_servers.Count > 0) output.WriteLine("stopped: every server and process of the devnet has ended");
    }
}
