namespace PbsMarket.Testing;

/// <summary>Finds the repository and the external tools that scripts/setup.sh installs.</summary>
public static class RepoPaths
{
    public const string SetupCommand = "scripts/setup.sh";

    public static string Root { get; } = FindRoot();

    public static string ToolsBin => Path.Combine(Root, "tools", "bin");

    static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PbsMarket.sln")))
            dir = dir.Parent;
        return dir?.FullName
            ?? throw new InvalidOperationException($"PbsMarket.sln not found above {AppContext.BaseDirectory}");
    }

    /// <summary>A binary from tools/bin, then PATH; fails with the command that installs it.</summary>
    public static string Require(string name, string installHint)
    {
        var local = Path.Combine(ToolsBin, name);
        if (File.Exists(local)) return local;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        throw new MissingToolException($"{name} is not installed: run `{SetupCommand}` ({installHint}).");
    }

    /// <summary>The newest PostgreSQL server binaries (Debian keeps them off PATH).</summary>
    public static string PostgresBin()
    {
        var fromEnv = Environment.GetEnvironmentVariable("PBS_PG_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(Path.Combine(fromEnv, "initdb"))) return fromEnv;
        const string debian = "/usr/lib/postgresql";
        if (Directory.Exists(debian))
        {
            var best = Directory.GetDirectories(debian)
                .Select(d => (dir: Path.Combine(d, "bin"), ver: int.TryParse(Path.GetFileName(d), out var v) ? v : 0))
                .Where(x => File.Exists(Path.Combine(x.dir, "initdb")))
                .OrderByDescending(x => x.ver)
                .FirstOrDefault();
            if (best.dir is not null) return best.dir;
        }
        var initdb = Require("initdb", "apt-get install -y postgresql");
        return Path.GetDirectoryName(initdb)!;
    }
}

public sealed class MissingToolException(string message) : Exception(message);
