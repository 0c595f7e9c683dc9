using System.CommandLine;
using System.Security.Cryptography;
using PbsMarket.Core;

namespace PbsMarket.Cli;

/// <summary><c>pbs keys new</c>: a fresh key in an encrypted keystore (Web3 Secret Storage, scrypt).</summary>
public static class KeysCommand
{
    public static Command Build()
    {
        var cmd = new Command("keys", "Manage keys: `pbs keys new --out key.json --password-file pw.txt` writes an encrypted keystore and prints its address.");
        var create = new Command("new", "Generate a secp256k1 key and write it as an encrypted keystore (scrypt), readable by its owner only (mode 600). Prints the address.");
        var outFile = new Option<string>("--out") { Description = "Keystore file to write (refuses to overwrite).", Required = true };
        var password = new Option<string>("--password-file") { Description = "File holding the password.", Required = true };
        create.Options.Add(outFile);
        create.Options.Add(password);
        create.SetAction(pr =>
        {
            var path = pr.GetValue(outFile)!;
            var pwFile = pr.GetValue(password)!;
            Cli.RequireFile(pwFile, "--password-file");
            if (File.Exists(path)) throw new UsageException($"--out: {path} exists; not overwriting a key");
            var pw = File.ReadAllText(pwFile).TrimEnd('\r', '\n');
            if (pw.Length == 0) throw new UsageException("--password-file: the password is empty");
            byte[] secret;
            ProtocolKey key;
            while (true)
            {
                secret = RandomNumberGenerator.GetBytes(32);
                try { key = new ProtocolKey(secret); break; } catch (ArgumentException) { }
            }
            Keystore.Write(path, pw, secret, key.Address);
            CryptographicOperations.ZeroMemory(secret);
            Console.WriteLine(key.Address.ToChecksumString());
            return ExitCodes.Ok;
        });
        cmd.Subcommands.Add(create);
        return cmd;
    }
}
