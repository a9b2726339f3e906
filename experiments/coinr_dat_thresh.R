# COINr's aggregation without imputation on its ASEM example (denominated, min-max to [0, 100],
# arithmetic means with Aggregate(dat_thresh = t)), written to CSV per threshold so that
# `python experiments/coinr_dat_thresh.py` can set nqpf_sens's engine beside it.
# Needs R and COINr; run from the project root:
#   Rscript experiments/coinr_dat_thresh.R results/coinr_dat_thresh
library(COINr)

args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) >= 1) args[1] else "results/coinr_dat_thresh"
dir.create(out, recursive = TRUE, showWarnings = FALSE)

coin <- new_coin(COINr::ASEM_iData, COINr::ASEM_iMeta, quietly = TRUE,
                 level_names = c("Indicator", "Pillar", "Sub-index", "Index"))
coin <- Denominate(coin, dset = "Raw")
coin <- Normalise(coin, dset = "Denominated",
                  global_specs = list(f_n = "n_minmax", f_n_para = list(c(0, 100))))
thresholds <- list("0" = 0, "0.5" = 0.5, "0.8" = 0.8, "0.8_0_0" = c(0.8, 0, 0))
for (name in names(thresholds)) {
  built <- Aggregate(coin, dset = "Normalised", dat_thresh = thresholds[[name]])
  scores <- get_dset(built, dset = "Aggregated")
  write.csv(scores, file.path(out, paste0("aggregated_", name, ".csv")), row.names = FALSE)
}
