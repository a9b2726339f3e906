# COINr's sensitivity vignette on its ASEM example, at a larger N, written to CSV so that it can
# be set beside `python -m nqpf_sens run configs/asem_sobol.toml` (README, "COINr's vignette").
# Needs R and COINr (install.packages("COINr")); run from the project root:
#   Rscript experiments/coinr_vignette.R 1000 results/coinr_vignette
# COINr evaluates one scenario at a time: N = 1000 means 6,000 rebuilds of the index.
library(COINr)

args <- commandArgs(trailingOnly = TRUE)
n <- if (length(args) >= 1) as.integer(args[1]) else 1000
out <- if (length(args) >= 2) args[2] else "results/coinr_vignette"
dir.create(out, recursive = TRUE, showWarnings = FALSE)
set.seed(2018)

coin <- build_example_coin(quietly = TRUE)
noisy <- get_noisy_weights(
  w = coin$Meta$Weights$Original,
  noise_specs = data.frame(Level = c(2, 3), NoiseFactor = c(0.25, 0.25)),
  Nrep = 100
)
specs <- list(
  Winmax = list(Address = "$Log$Treat$global_specs$f1_para$winmax",
                Distribution = 1:5, Type = "discrete"),
  Normalisation = list(Address = "$Log$Normalise$global_specs", Type = "discrete",
                       Distribution = list(list(f_n = "n_minmax", f_n_para = list(c(1, 100))),
                                           list(f_n = "n_zscore", f_n_para = list(c(10, 2))))),
  Weights = list(Address = "$Log$Aggregate$w", Distribution = noisy, Type = "discrete"),
  Aggregation = list(Address = "$Log$Aggregate$f_ag", Distribution = c("a_amean", "a_gmean"),
                     Type = "discrete")
)
started <- Sys.time()
result <- get_sensitivity(coin, SA_specs = specs, N = n, SA_type = "SA", dset = "Aggregated",
                          iCode = "Index", Nboot = 200, quietly = TRUE)
seconds <- as.numeric(difftime(Sys.time(), started, units = "secs"))
write.csv(result$Sensitivity, file.path(out, "sensitivity.csv"), row.names = FALSE)
write.csv(result$RankStats, file.path(out, "rank_stats.csv"), row.names = FALSE)
writeLines(sprintf("N = %d, %d runs, %.0f s", n, 6L * n, seconds), file.path(out, "run.txt"))
