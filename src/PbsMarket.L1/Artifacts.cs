using System.Text.Json;

namespace PbsMarket.L1;

/// <summary>A compiled contract from forge's build output (contracts/out/X.sol/X.json).</summary>
public sealed record ContractArtifact(string Name, string Abi, string Bytecode)
{
    public static ContractArtifact Load(string outDir, string name)
    {
        var path = Path.Combine(outDir, $"{name}.sol", $"{name}.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} not found: build the contracts first (`scripts/build-contracts.sh`, or `forge build` in contracts/)", path);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var abi = doc.RootElement.GetProperty("abi").GetRawText();
        var bytecode = doc.RootElement.GetProperty("bytecode").GetProperty("object").GetString()!;
        return new ContractArtifact(name, abi, bytecode);
    }

    /// <summary>contracts/out, found above the running program (repo checkouts and test runs).</summary>
    public static string DefaultOutDir()
    {
        var env = Environment.GetEnvironmentVariable("PBS_CONTRACTS_OUT");
        if (!string.IsNullOrEmpty(env)) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "contracts", "out");
            if (Directory.Exists(candidate)) return candidate;
        }
        return Path.Combine(Directory.GetCurrentDirectory(), "contracts", "out");
    }
}
