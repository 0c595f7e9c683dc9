using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;

namespace PbsMarket.Testing;

/// <summary>A throwaway anvil L1 node on a free loopback port (automine unless a block time is given).</summary>
public sealed class AnvilNode(long chainId = 31337, int? blockTimeSeconds = null, int accounts = 20) : ServerProcess("anvil")
{
    static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>anvil's well-known default mnemonic; accounts[i] has this key.</summary>
    public const string Mnemonic = "test test test test test test test test test test test junk";

    /// <summary>The first default anvil accounts' private keys (10,000 ETH each).</summary>
    public static readonly string[] DevKeys =
    [
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    ];

    public long ChainId { get; } = chainId;
    public string RpcUrl => $"http://127.0.0.1:{Port}";

    protected override ProcessStartInfo StartInfo()
    {
        var psi = new ProcessStartInfo(RepoPaths.Require("anvil", "npm installs it into tools/bin")) { WorkingDirectory = Dir };
        var args = new List<string> { "--host", "127.0.0.1", "--port", Port.ToString(), "--chain-id", ChainId.ToString(),
            "--accounts", accounts.ToString(), "--silent", "--config-out", Path.Combine(Dir, "anvil-config.json"), "--gas-limit", "60000000" };
        if (blockTimeSeconds is { } bt) args.AddRange(["--block-time", bt.ToString()]);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = Dir; // anvil keeps caches under ~/.foundry
        return psi;
    }

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        var result = await RpcAsync("eth_chainId", [], ct);
        return result.GetString() is { Length: > 2 };
    }

    /// <summary>One raw JSON-RPC call; throws with the node's error message on failure.</summary>
    public async Task<JsonElement> RpcAsync(string method, object[] parameters, CancellationToken ct = default)
    {
        using var response = await Http.PostAsJsonAsync(RpcUrl, new { jsonrpc = "2.0", id = 1, method, @params = parameters }, ct);
        response.EnsureSuccessStatusCode();
        var doc = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        if (doc.TryGetProperty("error", out var error))
            throw new InvalidOperationException($"{method}: {error}");
        return doc.GetProperty("result").Clone();
    }
}
