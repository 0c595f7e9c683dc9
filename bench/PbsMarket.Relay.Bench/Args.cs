namespace PbsMarket.Relay.Bench;

/// <summary>The bench's few flags: <c>--name value</c> pairs and bare switches.</summary>
static class Args
{
    public static string? String(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public static int Int(string[] args, string name, int fallback) =>
        String(args, name) is { } s ? int.TryParse(s, out var v) ? v : throw new ArgumentException($"{name} wants an integer, not '{s}'") : fallback;

    public static bool Has(string[] args, string name) => Array.IndexOf(args, name) >= 0;
}
