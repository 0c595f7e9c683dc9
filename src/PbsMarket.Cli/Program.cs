global using System.Numerics;
using System.CommandLine;
using PbsMarket.Cli;

return await Cli.RunAsync(args);
