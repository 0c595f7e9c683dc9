using System.Globalization;
using System.Reflection;
using Nethereum.ABI.ABIDeserialisation;
using Nethereum.ABI.FunctionEncoding;
using Nethereum.ABI.Model;
using PbsMarket.Core;

namespace PbsMarket.L1;

/// <summary>A decoded revert: a custom error of the contracts' ABI (or Error(string) / Panic(uint256)).</summary>
public sealed record ContractError(string Name, IReadOnlyList<string> Args, string RawData)
{
    public override string ToString() => $"{Name}({string.Join(",", Args)})";
}

/// <summary>Thrown when a call the client sends would revert (found by eth_call before sending).</summary>
public sealed class ContractRevertException(string what, ContractError error) : Exception($"{what} reverted: {error}")
{
    public ContractError Error { get; } = error;
}

/// <summary>
/// Decodes revert data against the error list of the Inbox ABI (which inherits IPbsErrors, so it knows every
/// custom error of the three contracts). The ABI is embedded from contracts/out/Inbox.sol/Inbox.json.
/// </summary>
public static class ContractErrors
{
    static readonly Lazy<Dictionary<string, ErrorABI>> s_bySelector = new(Load);

    static Dictionary<string, ErrorABI> Load()
    {
        using var stream = typeof(ContractErrors).Assembly.GetManifestResourceStream("PbsMarket.L1.Inbox.json")
            ?? throw new InvalidOperationException("embedded Inbox ABI missing");
        using var doc = System.Text.Json.JsonDocument.Parse(stream);
        var abi = new ABIJsonDeserialiser().DeserialiseContract(doc.RootElement.GetProperty("abi").GetRawText());
        var map = new Dictionary<string, ErrorABI>(StringComparer.OrdinalIgnoreCase);
        foreach (var e in abi.Errors) map["0x" + e.Sha3Signature.ToLowerInvariant()] = e;
        return map;
    }

    /// <summary>All custom error names the ABI knows.</summary>
    public static IEnumerable<string> KnownNames => s_bySelector.Value.Values.Select(e => e.Name);

    /// <summary>Decodes revert data (0x-hex); unknown selectors give <c>Unknown(0x…)</c>, empty data <c>Revert()</c>.</summary>
    public static ContractError Decode(string? revertData)
    {
        var data = string.IsNullOrEmpty(revertData) ? "0x" : revertData.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? revertData : "0x" + revertData;
        if (data.Length < 10) return new ContractError("Revert", [], data);
        var selector = data[..10].ToLowerInvariant();
        var body = data[10..];
        try
        {
            if (s_bySelector.Value.TryGetValue(selector, out var error))
                return new ContractError(error.Name, Format(new ParameterDecoder().DecodeDefaultData(body, error.InputParameters)), data);
            if (selector == "0x08c379a0")
                return new ContractError("Error", Format(new ParameterDecoder().DecodeDefaultData(body, [new Parameter("string", "message", 1)])), data);
            if (selector == "0x4e487b71")
                return new ContractError("Panic", Format(new ParameterDecoder().DecodeDefaultData(body, [new Parameter("uint256", "code", 1)])), data);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new ContractError("Malformed", [data], data);
        }
        return new ContractError("Unknown", [data], data);
    }

    static List<string> Format(List<ParameterOutput> outputs) => [.. outputs.Select(o => FormatValue(o.Result))];

    static string FormatValue(object? v) => v switch
    {
        null => "",
        byte[] b => Hex.Encode(b),
        string s when s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) => s.ToLowerInvariant(),
        string s => s,
        bool b => b ? "true" : "false",
        BigInteger n => n.ToString(CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };
}
