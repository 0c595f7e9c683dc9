namespace PbsMarket.Cli;

/// <summary>
/// anvil's default accounts (mnemonic "test test test test test test test test test test test junk"). These keys are
/// PUBLIC test keys printed by every anvil and hardhat node: never use them on a real chain.
/// </summary>
public static class DevKeys
{
    public static IReadOnlyList<string> Keys => PbsMarket.LocalServers.AnvilNode.DevKeys;

    public const string Warning = "anvil's default mnemonic keys are PUBLIC test keys: never send real funds to these addresses";

    public static string Get(int index) => index >= 0 && index < Keys.Count ? Keys[index]
        : throw new UsageException($"--dev-account must be 0..{Keys.Count - 1}");
}
