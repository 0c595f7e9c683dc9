using PbsMarket.LocalServers;

namespace PbsMarket.Testing;

/// <summary>The repository root and the tools scripts/setup.sh installs (see <see cref="Tools"/>).</summary>
public static class RepoPaths
{
    public const string SetupCommand = Tools.SetupCommand;

    public static string Root => Tools.RepoRoot ?? throw new InvalidOperationException($"PbsMarket.sln not found above {AppContext.BaseDirectory}");

    /// <summary>A binary from tools/bin, then PATH; fails with the command that installs it.</summary>
    public static string Require(string name, string installHint) => Tools.Require(name, installHint);
}
